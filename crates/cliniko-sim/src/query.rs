//! The list parameters of the API (readme "Pagination", "Filtering Results", "Ordering"):
//! `q` / `q[]` filter strings `FIELD:OPVALUE`, `sort` and `order`, `page` and `per_page`.
//!
//! Each resource names the fields it may be filtered by, with their type; an operator is
//! accepted only on a field of a type the readme lists it for:
//!
//! | type | operators |
//! |---|---|
//! | DateTime | `>=` `>` `<=` `<` |
//! | Date | `=` (with `*` wildcards) `>=` `>` `<=` `<` |
//! | Integer | `=` (also a comma list) `!=` `>=` `>` `<=` `<` |
//! | String | `=` `!=` `~` (contains) `~~` (wildcard `%`) |
//!
//! Anything else (an unknown field, an operator the type does not take, a value that does not
//! parse, a DateTime not in UTC) is a [`QueryError`], answered `400`.

use std::cmp::Ordering;

use jiff::Timestamp;
use jiff::civil::Date;

/// The default page size.
pub const DEFAULT_PER_PAGE: u64 = 50;
/// The largest page size; a bigger `per_page` is served as this.
pub const MAX_PER_PAGE: u64 = 100;

/// A filterable field's type, as each section's "Filtering" list gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    DateTime,
    Date,
    Integer,
    String,
    /// An array of integers (`patient_ids` of bookings), filtered with the string operators.
    IntegerArray,
}

/// A field's value on one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Time(Timestamp),
    Date(Date),
    Int(u64),
    Str(String),
    Ints(Vec<u64>),
    Null,
}

/// A record that can be filtered and sorted.
pub trait Record {
    /// The value of `field` (one of the resource's filter fields, or a sort column).
    fn value(&self, field: &str) -> Value;
}

/// A filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    Wildcard,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "~",
            Op::Wildcard => "~~",
        }
    }

    fn allowed(self, kind: Kind) -> bool {
        use Op::*;
        match kind {
            Kind::DateTime => matches!(self, Lt | Le | Gt | Ge),
            Kind::Date => matches!(self, Eq | Lt | Le | Gt | Ge),
            Kind::Integer => matches!(self, Eq | Ne | Lt | Le | Gt | Ge),
            Kind::String => matches!(self, Eq | Ne | Contains | Wildcard),
            Kind::IntegerArray => matches!(self, Eq | Ne | Contains),
        }
    }
}

/// A filter's operand, parsed for its field's type.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Time(Timestamp),
    Date(Date),
    /// A date pattern with `*` wildcards (`****-05-**`).
    DatePattern(String),
    Ints(Vec<u64>),
    Str(String),
}

/// One parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    field: String,
    op: Op,
    operand: Operand,
}

/// Why a list request's parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("invalid filter string {0:?}: expected FIELD:OPERATORVALUE")]
    Malformed(String),
    #[error("invalid filter field {0:?}: this resource cannot be filtered by it")]
    UnknownField(String),
    #[error("invalid filter operator {op:?} for the {kind} field {field:?}")]
    Operator {
        field: String,
        op: &'static str,
        kind: &'static str,
    },
    #[error("invalid filter value for {field:?}: expected {expected}")]
    Value {
        field: String,
        expected: &'static str,
    },
    #[error("invalid sort column {0:?}")]
    Sort(String),
    #[error("invalid order {0:?}: expected asc or desc")]
    Order(String),
    #[error("invalid {name} {value:?}: expected a positive whole number")]
    Paging { name: &'static str, value: String },
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::DateTime => "DateTime",
        Kind::Date => "Date",
        Kind::Integer => "Integer",
        Kind::String => "String",
        Kind::IntegerArray => "Array",
    }
}

/// The parsed list parameters of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filters: Vec<Filter>,
    /// Sort columns with `true` for descending.
    pub sort: Vec<(String, bool)>,
    pub page: u64,
    pub per_page: u64,
}

impl ListQuery {
    /// Parse the query pairs for a resource filterable by `fields`. Columns to sort by are the
    /// filter fields.
    ///
    /// # Errors
    /// A [`QueryError`] naming the first bad parameter.
    pub fn parse(pairs: &[(String, String)], fields: &[(&str, Kind)]) -> Result<Self, QueryError> {
        let mut filters = Vec::new();
        let mut sort_param = None;
        let mut order_desc = false;
        let mut page = 1;
        let mut per_page = DEFAULT_PER_PAGE;
        for (name, value) in pairs {
            match name.as_str() {
                "q" | "q[]" => filters.push(parse_filter(value, fields)?),
                "sort" => sort_param = Some(value.clone()),
                "order" => {
                    order_desc = match value.to_ascii_lowercase().as_str() {
                        "asc" => false,
                        "desc" => true,
                        _ => return Err(QueryError::Order(value.clone())),
                    }
                }
                "page" => page = positive("page", value)?,
                "per_page" => per_page = positive("per_page", value)?.min(MAX_PER_PAGE),
                _ => {}
            }
        }
        let mut sort = Vec::new();
        if let Some(s) = sort_param {
            for col in s.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                let (name, desc) = match col.split_once(':') {
                    Some((n, "desc")) => (n, true),
                    Some((n, "asc")) => (n, false),
                    Some(_) => return Err(QueryError::Sort(col.to_owned())),
                    None => (col, order_desc),
                };
                if !fields.iter().any(|(f, _)| *f == name) {
                    return Err(QueryError::Sort(name.to_owned()));
                }
                sort.push((name.to_owned(), desc));
            }
        }
        if sort.is_empty() {
            sort.push(("created_at".to_owned(), order_desc));
        }
        Ok(ListQuery {
            filters,
            sort,
            page,
            per_page,
        })
    }

    /// Filter, sort and cut one page of `items`: the page and the number of matching items.
    pub fn apply<'a, T: Record + 'a>(
        &self,
        items: impl IntoIterator<Item = &'a T>,
    ) -> (Vec<&'a T>, u64) {
        let mut kept: Vec<&T> = items
            .into_iter()
            .filter(|r| self.filters.iter().all(|f| f.matches(*r)))
            .collect();
        kept.sort_by(|a, b| {
            for (col, desc) in &self.sort {
                let o = compare(&a.value(col), &b.value(col));
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            compare(&a.value("id"), &b.value("id"))
        });
        let total = kept.len() as u64;
        let start = (self.page - 1).saturating_mul(self.per_page);
        let page = kept
            .into_iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(usize::try_from(self.per_page).unwrap_or(usize::MAX))
            .collect();
        (page, total)
    }
}

fn positive(name: &'static str, value: &str) -> Result<u64, QueryError> {
    match value.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(QueryError::Paging {
            name,
            value: value.to_owned(),
        }),
    }
}

/// Nulls sort last; values of different kinds do not meet in one column.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        (Value::Time(x), Value::Time(y)) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Str(x), Value::Str(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Value::Ints(x), Value::Ints(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Operators, longest first so `>=` is not read as `>`.
const OPS: [(&str, Op); 8] = [
    ("~~", Op::Wildcard),
    (">=", Op::Ge),
    ("<=", Op::Le),
    ("!=", Op::Ne),
    ("~", Op::Contains),
    (">", Op::Gt),
    ("<", Op::Lt),
    ("=", Op::Eq),
];

fn parse_filter(s: &str, fields: &[(&str, Kind)]) -> Result<Filter, QueryError> {
    let (field, rest) = s
        .split_once(':')
        .ok_or_else(|| QueryError::Malformed(s.to_owned()))?;
    let kind = fields
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, k)| *k)
        .ok_or_else(|| QueryError::UnknownField(field.to_owned()))?;
    let (op, raw) = OPS
        .iter()
        .find_map(|(sym, op)| rest.strip_prefix(sym).map(|v| (*op, v)))
        .ok_or_else(|| QueryError::Malformed(s.to_owned()))?;
    if !op.allowed(kind) {
        return Err(QueryError::Operator {
            field: field.to_owned(),
            op: op.symbol(),
            kind: kind_name(kind),
        });
    }
    let bad = |expected| QueryError::Value {
        field: field.to_owned(),
        expected,
    };
    let operand = match kind {
        Kind::DateTime => {
            // "DateTime has to be in UTC": only the `Z` form is taken.
            if !raw.ends_with('Z') {
                return Err(bad("a UTC date and time such as 2014-08-30T18:00:00Z"));
            }
            Operand::Time(
                raw.parse()
                    .map_err(|_| bad("a UTC date and time such as 2014-08-30T18:00:00Z"))?,
            )
        }
        Kind::Date if op == Op::Eq && raw.contains('*') => {
            if !date_pattern_ok(raw) {
                return Err(bad("a date YYYY-MM-DD, with * as wildcards"));
            }
            Operand::DatePattern(raw.to_owned())
        }
        Kind::Date => Operand::Date(
            strict_date(raw).ok_or_else(|| bad("a date YYYY-MM-DD, with * as wildcards"))?,
        ),
        Kind::Integer => {
            let list: Result<Vec<u64>, _> = raw.split(',').map(|v| v.trim().parse()).collect();
            let list = list.map_err(|_| bad("a whole number (or, with =, a comma list)"))?;
            if list.len() > 1 && op != Op::Eq {
                return Err(bad("a single whole number (lists go with = only)"));
            }
            Operand::Ints(list)
        }
        Kind::IntegerArray => {
            let list: Result<Vec<u64>, _> = raw.split(',').map(|v| v.trim().parse()).collect();
            Operand::Ints(list.map_err(|_| bad("whole numbers separated by commas"))?)
        }
        Kind::String => Operand::Str(raw.to_owned()),
    };
    Ok(Filter {
        field: field.to_owned(),
        op,
        operand,
    })
}

/// A date written exactly `YYYY-MM-DD`.
pub fn strict_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    s.parse().ok()
}

fn date_pattern_ok(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit() || *c == b'*',
        })
}

impl Filter {
    /// Whether `r` passes. A null value passes no filter.
    pub fn matches<T: Record + ?Sized>(&self, r: &T) -> bool {
        let v = r.value(&self.field);
        match (&v, &self.operand) {
            (Value::Null, _) => false,
            (Value::Time(t), Operand::Time(x)) => cmp_op(self.op, t.cmp(x)),
            (Value::Date(d), Operand::Date(x)) => cmp_op(self.op, d.cmp(x)),
            (Value::Date(d), Operand::DatePattern(p)) => {
                let s = d.to_string();
                s.bytes().zip(p.bytes()).all(|(c, q)| q == b'*' || c == q)
            }
            (Value::Int(n), Operand::Ints(xs)) => match self.op {
                Op::Eq => xs.contains(n),
                _ => xs.first().is_some_and(|x| cmp_op(self.op, n.cmp(x))),
            },
            (Value::Ints(ns), Operand::Ints(xs)) => match self.op {
                Op::Eq => ns == xs,
                Op::Ne => ns != xs,
                _ => xs.iter().all(|x| ns.contains(x)),
            },
            (Value::Str(s), Operand::Str(x)) => match self.op {
                Op::Eq => s == x,
                Op::Ne => s != x,
                Op::Contains => s.to_lowercase().contains(&x.to_lowercase()),
                Op::Wildcard => wildcard(&s.to_lowercase(), &x.to_lowercase()),
                _ => false,
            },
            _ => false,
        }
    }
}

fn cmp_op(op: Op, o: Ordering) -> bool {
    match op {
        Op::Eq => o == Ordering::Equal,
        Op::Ne => o != Ordering::Equal,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
        Op::Contains | Op::Wildcard => false,
    }
}

/// SQL `LIKE` with `%` only: `%` matches any run of characters, everything else itself.
fn wildcard(s: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('%').collect();
    if parts.len() == 1 {
        return s == pattern;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_like_sql_like() {
        assert!(wildcard("jameson", "ja%on%"));
        assert!(wildcard("jason", "ja%on%"));
        assert!(!wildcard("jones", "ja%on%"));
        assert!(wildcard("abc", "%"));
        assert!(wildcard("abc", "a%c"));
        assert!(!wildcard("ab", "a%bc"));
    }

    #[test]
    fn operators_are_read_longest_first() {
        let fields = [("updated_at", Kind::DateTime), ("last_name", Kind::String)];
        let f = parse_filter("updated_at:>=2014-08-30T18:00:00Z", &fields).unwrap();
        assert_eq!(f.op, Op::Ge);
        let f = parse_filter("last_name:~~ja%on%", &fields).unwrap();
        assert_eq!(f.op, Op::Wildcard);
        assert!(matches!(
            parse_filter("updated_at:=2014-08-30T18:00:00Z", &fields),
            Err(QueryError::Operator { .. })
        ));
        assert!(matches!(
            parse_filter("updated_at:>2014-08-30T18:00:00+10:00", &fields),
            Err(QueryError::Value { .. })
        ));
        assert!(matches!(
            parse_filter("nope:=1", &fields),
            Err(QueryError::UnknownField(_))
        ));
    }
}
