//! ACL rows of ours (`ovn.enforce`): drops on a Route's Port_Group (ovn-nb(5)).
use crate::nb::diff::{NbChange, RowChange};
use crate::nb::model;
use crate::nb::observed::{Observed, Seen};
use crate::nb::row::{Family, NbRow, ReadContext};
use crate::ovsdb::typed::Col;
use crate::plan::nb::{AclAction, AclDirection, DesiredNb, NbAcl, Owner};

use super::word;

impl NbRow for NbAcl {
    type Model = model::Acl;
    const FAMILY: Family = Family::Acl;
    const WHAT: &'static str = "ACL";
    const COLUMNS: &'static [Col<model::Acl>] = &[
        model::Acl::DIRECTION.erased(),
        model::Acl::PRIORITY.erased(),
        model::Acl::MATCH.erased(),
        model::Acl::ACTION.erased(),
    ];
    const IDS: Col<model::Acl> = model::Acl::EXTERNAL_IDS.erased();

    fn owner(&self) -> &Owner {
        &self.owner
    }
    fn key(&self) -> &str {
        &self.port_group
    }
    fn same_columns(&self, other: &Self) -> bool {
        self == other
    }
    fn to_model(&self) -> model::Acl {
        model::Acl {
            direction: self.direction.as_str().to_owned(),
            priority: self.priority,
            r#match: self.match_.clone(),
            action: self.action.as_str().to_owned(),
            external_ids: self.owner.external_ids(),
            ..Default::default()
        }
    }
    fn from_model(m: model::Acl, owner: Owner, ctx: &ReadContext<'_>) -> Result<Self, String> {
        Ok(NbAcl {
            owner,
            port_group: ctx.parent.to_owned(),
            direction: word(&model::Acl::DIRECTION, &m.direction, AclDirection::parse)?,
            priority: m.priority,
            match_: m.r#match,
            action: word(&model::Acl::ACTION, &m.action, AclAction::parse)?,
        })
    }
    fn desired(d: &DesiredNb) -> &Vec<Self> {
        &d.acls
    }
    fn desired_mut(d: &mut DesiredNb) -> &mut Vec<Self> {
        &mut d.acls
    }
    fn observed(o: &Observed) -> &Vec<Seen<Self>> {
        &o.acls
    }
    fn observed_mut(o: &mut Observed) -> &mut Vec<Seen<Self>> {
        &mut o.acls
    }
    fn change(c: RowChange<Self>) -> NbChange {
        NbChange::Acl(c)
    }
}
