//! Address_Set rows of ours: one per Route and IP family, the selected pods' OVN
//! addresses, changed element by element (`mutate`), never rewritten (ovn-nb(5)).
use std::collections::BTreeSet;

use crate::nb::diff::{NbChange, RowChange};
use crate::nb::model;
use crate::nb::observed::{Observed, Seen};
use crate::nb::row::{Family, NbRow, ReadContext, RowProblem};
use crate::ovsdb::typed::Col;
use crate::ovsdb::{Atom, Uuid};
use crate::plan::nb::{DesiredNb, NbAddressSet, Owner};

use super::strings;

impl NbRow for NbAddressSet {
    type Model = model::AddressSet;
    const FAMILY: Family = Family::AddressSet;
    const WHAT: &'static str = "address set";
    const COLUMNS: &'static [Col<model::AddressSet>] = &[model::AddressSet::NAME.erased()];
    const IDS: Col<model::AddressSet> = model::AddressSet::EXTERNAL_IDS.erased();
    const SET_COLUMN: Option<Col<model::AddressSet>> = Some(model::AddressSet::ADDRESSES.erased());

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
        _port: &dyn Fn(&str) -> Option<Uuid>,
        _problems: &mut Vec<RowProblem>,
    ) -> BTreeSet<Atom> {
        strings(&self.addresses)
    }
    fn to_model(&self) -> model::AddressSet {
        model::AddressSet {
            name: self.name.clone(),
            addresses: self.addresses.clone(),
            external_ids: self.owner.external_ids(),
            ..Default::default()
        }
    }
    fn from_model(m: model::AddressSet, owner: Owner, _: &ReadContext<'_>) -> Result<Self, String> {
        Ok(NbAddressSet {
            owner,
            name: m.name,
            addresses: m.addresses,
        })
    }
    fn desired(d: &DesiredNb) -> &Vec<Self> {
        &d.address_sets
    }
    fn desired_mut(d: &mut DesiredNb) -> &mut Vec<Self> {
        &mut d.address_sets
    }
    fn observed(o: &Observed) -> &Vec<Seen<Self>> {
        &o.address_sets
    }
    fn observed_mut(o: &mut Observed) -> &mut Vec<Seen<Self>> {
        &mut o.address_sets
    }
    fn change(c: RowChange<Self>) -> NbChange {
        NbChange::AddressSet(c)
    }
}
