//! One NB row family = one [`NbRow`] impl. The families of rows we own (Address_Set,
//! Port_Group, ACL, Logical_Router_Policy, Logical_Router_Static_Route) differ only in what
//! this trait says: their table and typed row (the generated [`super::model`]), the columns a
//! pass writes, the one large set column changed by `mutate` (never rewritten), the row
//! they hang off, and the checks a desired row must pass. Reading (`observed`), diffing
//! (`diff`), writing (`ops`), leaving alone (`keep`) and scoping by Route are written once on
//! it.
//!
//! Owns: the mapping between desired rows (`plan::nb`) and the generated model. Must not:
//! decide anything (that is `diff`) or touch a socket.
use std::collections::BTreeSet;
use std::fmt;

use super::diff::{NbChange, RowChange};
use super::model;
use super::observed::{Observed, RouterInfo, Seen};
use crate::ovsdb::typed::Col;
use crate::ovsdb::{Atom, Row, TypedRow, Uuid};
use crate::plan::nb::{
    DesiredNb, NbAcl, NbAddressSet, NbPolicy, NbPortGroup, NbStaticRoute, Owner,
};

pub const ADDRESS_SET: &str = model::AddressSet::TABLE;
pub const PORT_GROUP: &str = model::PortGroup::TABLE;
pub const ACL: &str = model::Acl::TABLE;
pub const POLICY: &str = model::LogicalRouterPolicy::TABLE;
pub const STATIC_ROUTE: &str = model::LogicalRouterStaticRoute::TABLE;
pub const ROUTER: &str = model::LogicalRouter::TABLE;
pub const ROUTER_PORT: &str = model::LogicalRouterPort::TABLE;
pub const SWITCH_PORT: &str = model::LogicalSwitchPort::TABLE;
pub const LOAD_BALANCER: &str = model::LoadBalancer::TABLE;
/// Not a family of ours: sessions are shared with ovn-kubernetes (see `nb::bfd`).
pub const BFD: &str = model::Bfd::TABLE;

/// `external_ids`, where every table of ours keeps the ownership keys.
pub const EXTERNAL_IDS: &str = model::AddressSet::EXTERNAL_IDS.name();

/// The families of rows we own, in the order a pass handles them: a row's parent family
/// comes before it (port groups before their ACLs; routers are never ours).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    AddressSet,
    PortGroup,
    Acl,
    Policy,
    StaticRoute,
}

/// "Rows of this family are referenced from `table`'s `column`": the tables are not root
/// tables, so a row lives as long as a parent references it (RFC 7047 section 3.2 isRoot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParentLink {
    pub table: &'static str,
    pub column: &'static str,
    /// The parent's family when the parent rows are ours (port groups); `None` when they
    /// are not (routers: found by name among the observed routers).
    pub family: Option<Family>,
    /// The parent table's `name` column.
    pub name: &'static str,
}

impl Family {
    pub const ALL: [Family; 5] = [
        Family::AddressSet,
        Family::PortGroup,
        Family::Acl,
        Family::Policy,
        Family::StaticRoute,
    ];

    pub fn table(self) -> &'static str {
        match self {
            Family::AddressSet => ADDRESS_SET,
            Family::PortGroup => PORT_GROUP,
            Family::Acl => ACL,
            Family::Policy => POLICY,
            Family::StaticRoute => STATIC_ROUTE,
        }
    }

    /// The row that references rows of this family; `None` for root tables.
    pub fn parent(self) -> Option<ParentLink> {
        match self {
            Family::AddressSet | Family::PortGroup => None,
            Family::Acl => Some(ParentLink {
                table: PORT_GROUP,
                column: model::PortGroup::ACLS.name(),
                family: Some(Family::PortGroup),
                name: model::PortGroup::NAME.name(),
            }),
            Family::Policy => Some(ParentLink {
                table: ROUTER,
                column: model::LogicalRouter::POLICIES.name(),
                family: None,
                name: model::LogicalRouter::NAME.name(),
            }),
            Family::StaticRoute => Some(ParentLink {
                table: ROUTER,
                column: model::LogicalRouter::STATIC_ROUTES.name(),
                family: None,
                name: model::LogicalRouter::NAME.name(),
            }),
        }
    }

    /// Root tables with a unique `name` index: a name held by a row that is not ours
    /// blocks ours.
    pub fn named(self) -> bool {
        self.parent().is_none()
    }

    /// Families whose rows hang off rows of this one (ACLs off port groups).
    pub fn children(self) -> impl Iterator<Item = (Family, ParentLink)> {
        let table = self.table();
        Family::ALL
            .into_iter()
            .filter_map(move |f| f.parent().filter(|l| l.table == table).map(|l| (f, l)))
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.table())
    }
}

/// What a desired row needs from around it to be judged.
pub struct CheckContext<'a> {
    /// The router the row hangs off, when it exists.
    pub router: Option<&'a RouterInfo>,
    /// Names of rows of ours' families held by rows that are not ours.
    pub taken: &'a BTreeSet<(Family, String)>,
}

impl CheckContext<'_> {
    /// Whether a row that is not ours holds `name` in `family`'s table.
    pub fn name_taken(&self, family: Family, name: &str) -> bool {
        self.taken.contains(&(family, name.to_owned()))
    }
}

/// A family check's verdict on one desired row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Write,
    /// Not written; what exists for it stays as it is (a transient problem must not tear
    /// down what was programmed).
    Leave,
    /// Not written; what exists for it is removed (it would do harm).
    Drop,
}

/// A problem found while judging a row: CamelCase reason and message.
pub type RowProblem = (&'static str, String);

/// What is known when a row of ours is read back.
pub struct ReadContext<'a> {
    /// Name of the router / port group that references the row ("" when none does).
    pub parent: &'a str,
    /// Logical_Switch_Port uuid -> name.
    pub port_name: &'a dyn Fn(Uuid) -> Option<String>,
}

/// One family of NB rows we own (see the module comment).
pub trait NbRow: Clone + Eq + Ord + fmt::Debug + Sized + 'static {
    /// The generated typed row of the family's table.
    type Model: TypedRow;
    const FAMILY: Family;
    /// What the row is called in problems.
    const WHAT: &'static str;
    /// Columns a pass writes on insert and update, besides the ownership column and the set
    /// column.
    const COLUMNS: &'static [Col<Self::Model>];
    /// `external_ids`: where the ownership keys live.
    const IDS: Col<Self::Model>;
    /// The set column that can be large: changed by `mutate` insert / delete of elements.
    const SET_COLUMN: Option<Col<Self::Model>> = None;

    fn owner(&self) -> &Owner;

    /// Root rows: their unique name. Child rows: their parent's name. A row of ours whose
    /// key differs from the desired row's is replaced, not updated (match expressions refer
    /// to the name; a row cannot move between parents).
    fn key(&self) -> &str;

    /// Whether every written column but the set column is equal.
    fn same_columns(&self, other: &Self) -> bool;

    /// The set column's elements. Port names resolve through `port`; names it does not
    /// know are reported in `problems`.
    fn set_atoms(
        &self,
        _port: &dyn Fn(&str) -> Option<Uuid>,
        _problems: &mut Vec<RowProblem>,
    ) -> BTreeSet<Atom> {
        BTreeSet::new()
    }

    /// Checks beyond the parent's existence.
    fn check(&self, _ctx: &CheckContext<'_>, _problems: &mut Vec<RowProblem>) -> Verdict {
        Verdict::Write
    }

    /// What is written instead of the desired row, when that differs (a part that cannot
    /// be written yet is left out; [`NbRow::check`] says so).
    fn written(&self, _ctx: &CheckContext<'_>) -> Option<Self> {
        None
    }

    /// The row as the typed model; columns we do not write keep their defaults.
    fn to_model(&self) -> Self::Model;

    /// A row of ours read back. `Err` when a column holds a word the schema does not list.
    fn from_model(m: Self::Model, owner: Owner, ctx: &ReadContext<'_>) -> Result<Self, String>;

    fn desired(d: &DesiredNb) -> &Vec<Self>;
    fn desired_mut(d: &mut DesiredNb) -> &mut Vec<Self>;
    fn observed(o: &Observed) -> &Vec<Seen<Self>>;
    fn observed_mut(o: &mut Observed) -> &mut Vec<Seen<Self>>;
    fn change(c: RowChange<Self>) -> NbChange;
}

/// Something done once per family, in [`Family::ALL`] order.
pub trait FamilyVisitor {
    fn visit<T: NbRow>(&mut self);
}

/// Calls `v` for every family, parents before children.
pub fn each_family(v: &mut impl FamilyVisitor) {
    v.visit::<NbAddressSet>();
    v.visit::<NbPortGroup>();
    v.visit::<NbAcl>();
    v.visit::<NbPolicy>();
    v.visit::<NbStaticRoute>();
}

/// The columns of `row` a pass writes: [`NbRow::COLUMNS`] and [`NbRow::IDS`].
pub fn written_columns<T: NbRow>(row: &T) -> Row {
    let mut r = row.to_model().to_row();
    r.retain(|k, _| k == T::IDS.name() || T::COLUMNS.iter().any(|c| c.name() == k));
    r
}

/// Owners of every desired row, family by family.
pub fn desired_owners(d: &DesiredNb) -> Vec<&Owner> {
    struct Owners<'a> {
        d: &'a DesiredNb,
        out: Vec<&'a Owner>,
    }
    impl FamilyVisitor for Owners<'_> {
        fn visit<T: NbRow>(&mut self) {
            self.out.extend(T::desired(self.d).iter().map(NbRow::owner));
        }
    }
    let mut v = Owners { d, out: Vec::new() };
    each_family(&mut v);
    v.out
}
