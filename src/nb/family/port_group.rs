//! Port_Group rows of ours: one per Route, the selected pods' logical switch ports by uuid
//! (resolved from their names), changed element by element (ovn-nb(5)).
use std::collections::BTreeSet;

use crate::nb::diff::{NbChange, RowChange};
use crate::nb::model;
use crate::nb::observed::{Observed, Seen};
use crate::nb::row::{Family, NbRow, ReadContext, RowProblem};
use crate::ovsdb::typed::Col;
use crate::ovsdb::{Atom, Uuid};
use crate::plan::nb::{DesiredNb, NbPortGroup, Owner};

impl NbRow for NbPortGroup {
    type Model = model::PortGroup;
    const FAMILY: Family = Family::PortGroup;
    const WHAT: &'static str = "port group";
    const COLUMNS: &'static [Col<model::PortGroup>] = &[model::PortGroup::NAME.erased()];
    const IDS: Col<model::PortGroup> = model::PortGroup::EXTERNAL_IDS.erased();
    const SET_COLUMN: Option<Col<model::PortGroup>> = Some(model::PortGroup::PORTS.erased());

    fn owner(&self) -> &Owner {
        &self.owner
    }
    fn key(&self) -> &str {
        &self.name
    }
    fn same_columns(&self, other: &Self) -> bool {
        self.owner == other.owner && self.name == other.name
    }
    fn set_atoms(
        &self,
        port: &dyn Fn(&str) -> Option<Uuid>,
        problems: &mut Vec<RowProblem>,
    ) -> BTreeSet<Atom> {
        let mut out = BTreeSet::new();
        for p in &self.ports {
            match port(p) {
                Some(u) => {
                    out.insert(Atom::Uuid(u));
                }
                None => problems.push((
                    "PortNotFound",
                    format!(
                        "logical switch port {p} does not exist (yet); its pod is left out of {}",
                        self.name
                    ),
                )),
            }
        }
        out
    }
    fn to_model(&self) -> model::PortGroup {
        // `ports` holds uuids, known only against a database: written from the change's
        // resolved set, never from here.
        model::PortGroup {
            name: self.name.clone(),
            external_ids: self.owner.external_ids(),
            ..Default::default()
        }
    }
    fn from_model(
        m: model::PortGroup,
        owner: Owner,
        ctx: &ReadContext<'_>,
    ) -> Result<Self, String> {
        Ok(NbPortGroup {
            owner,
            name: m.name,
            ports: m.ports.into_iter().filter_map(ctx.port_name).collect(),
        })
    }
    fn desired(d: &DesiredNb) -> &Vec<Self> {
        &d.port_groups
    }
    fn desired_mut(d: &mut DesiredNb) -> &mut Vec<Self> {
        &mut d.port_groups
    }
    fn observed(o: &Observed) -> &Vec<Seen<Self>> {
        &o.port_groups
    }
    fn observed_mut(o: &mut Observed) -> &mut Vec<Seen<Self>> {
        &mut o.port_groups
    }
    fn change(c: RowChange<Self>) -> NbChange {
        NbChange::PortGroup(c)
    }
}
