//! The map compiled into a tree of output fields, and its evaluation.
//!
//! Compiling once turns every path into segments and every target into a
//! position in the output tree, so evaluating a record is a walk over
//! borrowed input with no lookups by name on the output side.

use std::borrow::Cow;

use crate::json::Json;

use super::convert::{self, list_items, Env, ListItems};
use super::limits;
use super::map::{Convert, FieldSpec, Kind, MapError, TransformMap};
use super::out::Out;
use super::path::{self, Sources};
use super::stats::Counter;

#[derive(Debug)]
pub(crate) struct Entry {
    key: Box<str>,
    node: Node,
    omit_null: bool,
}

#[derive(Debug)]
enum Node {
    Obj(Vec<Entry>),
    Const(Out<'static>),
    Value(Value),
    List {
        src: Sources,
        item: Vec<Entry>,
        limit: Option<usize>,
        sort_by: Vec<Box<str>>,
        counter: Counter,
    },
    Zip(Vec<(Box<str>, Value)>),
    One(Vec<Entry>),
}

/// A field read from sources through one conversion.
#[derive(Debug, Clone)]
pub(crate) struct Value {
    pub src: Sources,
    pub conv: Convert,
    pub limit: Option<usize>,
    pub counter: Counter,
}

impl Value {
    /// The conversion alone, on one element of a zipped list.
    /// An element wrapped as `{"value": x}` is read as `x`.
    fn apply<'a, J: Json<'a>>(&self, el: J, env: &mut Env<'_>) -> Out<'a> {
        let el = el.get("value").unwrap_or(el);
        convert::apply(self.conv, Some(el), self.limit, self.counter, env)
    }

    pub fn eval<'a, J: Json<'a>>(&'a self, root: J, env: &mut Env<'_>) -> Out<'a> {
        convert::apply(
            self.conv,
            self.src.first(root),
            self.limit,
            self.counter,
            env,
        )
    }
}

/// One section of the map, compiled.
#[derive(Debug)]
pub(crate) struct Template {
    root: Vec<Entry>,
    /// The field holding the record's key, evaluated first and alone so a
    /// record without one is refused before anything else is counted.
    pub id: Value,
}

impl Template {
    pub fn eval<'a, J: Json<'a>>(&'a self, root: J, env: &mut Env<'_>) -> Out<'a> {
        eval_entries(&self.root, root, env)
    }
}

pub(crate) struct Compiled {
    pub asset: Template,
    pub finding: Template,
    pub finding_asset_id: Sources,
}

pub(crate) fn compile_map(map: &TransformMap) -> Result<Compiled, MapError> {
    let asset_root = compile_fields("asset", &map.asset.field)?;
    let finding_root = compile_fields("finding", &map.finding.field)?;
    let asset_id = key_value("asset", "id_field", &asset_root, &map.asset.id_field)?;
    let finding_id = key_value("finding", "id_field", &finding_root, &map.finding.id_field)?;
    for ident in &map.asset.identity {
        if !exists(&asset_root, &split(ident)) {
            return Err(MapError::Key {
                section: "asset",
                key: "identity",
                target: ident.clone(),
                problem: "is not a field of the map".into(),
            });
        }
    }
    if map.finding.asset_id.is_empty() {
        return Err(MapError::Key {
            section: "finding",
            key: "asset_id",
            target: String::new(),
            problem: "is empty: it needs at least one Orca path".into(),
        });
    }
    let finding_asset_id =
        Sources::parse(&map.finding.asset_id).map_err(|problem| MapError::Key {
            section: "finding",
            key: "asset_id",
            target: map.finding.asset_id.join(", "),
            problem,
        })?;
    Ok(Compiled {
        asset: Template {
            root: asset_root,
            id: asset_id,
        },
        finding: Template {
            root: finding_root,
            id: finding_id,
        },
        finding_asset_id,
    })
}

fn split(target: &str) -> Vec<&str> {
    target.split('.').collect()
}

fn compile_fields(section: &'static str, specs: &[FieldSpec]) -> Result<Vec<Entry>, MapError> {
    let mut root = Vec::new();
    for spec in specs {
        let err = |problem: String| MapError::Field {
            section,
            target: spec.target.clone(),
            problem,
        };
        let segs = split(&spec.target);
        if segs.iter().any(|s| s.is_empty()) {
            return Err(err(
                "target must be a dotted path without empty parts".into()
            ));
        }
        let node = compile_node(section, spec)?;
        insert(&mut root, &segs, node, spec.omit_null).map_err(err)?;
    }
    Ok(root)
}

fn compile_node(section: &'static str, spec: &FieldSpec) -> Result<Node, MapError> {
    let err = |problem: &str| MapError::Field {
        section,
        target: spec.target.clone(),
        problem: problem.to_owned(),
    };
    let sources = || Sources::parse(&spec.source).map_err(|p| err(&p));
    let counter = match &spec.counter {
        Some(name) => Counter::from_name(name).ok_or_else(|| {
            err(&format!(
                "counter `{name}` is not one of the transform counters (e.g. truncated_tags, truncated_services, truncated_softwares, truncated_other)"
            ))
        })?,
        None if spec.convert == Some(Convert::Tags) => Counter::truncated_tags,
        None => Counter::truncated_other,
    };
    if spec.limit == Some(0) {
        return Err(err("limit must be at least 1"));
    }
    if spec.kind != Kind::List && !spec.sort_by.is_empty() {
        return Err(err("sort_by only applies to kind = \"list\""));
    }
    if spec.kind != Kind::Value && spec.constant.is_some() {
        return Err(err("const only applies to kind = \"value\""));
    }
    if spec.kind != Kind::Value && spec.convert.is_some() {
        return Err(err(
            "convert belongs on the nested fields of a list, zip or one",
        ));
    }
    if spec.kind != Kind::Value && spec.field.is_empty() {
        return Err(err("a list, zip or one needs nested [[…field]] entries"));
    }
    match spec.kind {
        Kind::Value => {
            if !spec.field.is_empty() {
                return Err(err(
                    "nested fields need kind = \"list\", \"zip\" or \"one\"",
                ));
            }
            if spec.limit.is_some() && spec.convert != Some(Convert::Tags) {
                return Err(err("limit applies to lists and to convert = \"tags\""));
            }
            match (&spec.constant, spec.source.is_empty()) {
                (Some(_), false) => Err(err("has both const and source; keep one")),
                (Some(_), true) if spec.convert.is_some() => Err(err("a const takes no convert")),
                (Some(c), true) => Ok(Node::Const(toml_to_out(c))),
                (None, true) => Err(err("needs a source (a list of Orca paths) or a const")),
                (None, false) => Ok(Node::Value(Value {
                    src: sources()?,
                    conv: spec.convert.unwrap_or(Convert::Json),
                    limit: spec.limit,
                    counter,
                })),
            }
        }
        Kind::List => {
            if spec.source.is_empty() {
                return Err(err("a list needs a source naming the relation"));
            }
            let item = compile_fields(section, &spec.field)?;
            let sort_by: Vec<Box<str>> = spec.sort_by.iter().map(|s| s.as_str().into()).collect();
            if let Some(bad) = sort_by.iter().find(|k| !item.iter().any(|e| e.key == **k)) {
                return Err(err(&format!(
                    "sort_by names `{bad}`, which is not a nested field"
                )));
            }
            Ok(Node::List {
                src: sources()?,
                item,
                limit: spec.limit,
                sort_by,
                counter,
            })
        }
        Kind::Zip | Kind::One => {
            if !spec.source.is_empty() {
                return Err(err(
                    "a zip or one reads its nested fields' sources, not its own",
                ));
            }
            if spec.limit.is_some() {
                return Err(err("limit applies to lists and to convert = \"tags\""));
            }
            if spec.kind == Kind::One {
                return Ok(Node::One(compile_fields(section, &spec.field)?));
            }
            let mut cols = Vec::new();
            for f in &spec.field {
                match compile_node(section, f)? {
                    Node::Value(v) if !f.target.contains('.') => {
                        cols.push((f.target.as_str().into(), v))
                    }
                    _ => {
                        return Err(MapError::Field {
                            section,
                            target: f.target.clone(),
                            problem: "a zip's nested fields must be plain names with a source"
                                .into(),
                        })
                    }
                }
            }
            Ok(Node::Zip(cols))
        }
    }
}

fn insert(
    entries: &mut Vec<Entry>,
    segs: &[&str],
    node: Node,
    omit_null: bool,
) -> Result<(), String> {
    let Some((first, rest)) = segs.split_first() else {
        return Err("empty target".into());
    };
    let pos = entries.iter().position(|e| &*e.key == *first);
    if rest.is_empty() {
        return match pos {
            Some(_) => Err(format!(
                "target `{first}` is written twice (or clashes with a nested target)"
            )),
            None => {
                entries.push(Entry {
                    key: (*first).into(),
                    node,
                    omit_null,
                });
                Ok(())
            }
        };
    }
    let i = match pos {
        Some(i) => i,
        None => {
            entries.push(Entry {
                key: (*first).into(),
                node: Node::Obj(Vec::new()),
                omit_null: false,
            });
            entries.len() - 1
        }
    };
    match &mut entries[i].node {
        Node::Obj(children) => insert(children, rest, node, omit_null),
        _ => Err(format!(
            "`{first}` is already a field, so it cannot also hold nested fields"
        )),
    }
}

/// The plain value field at `target`, for `id_field`.
fn key_value(
    section: &'static str,
    key: &'static str,
    root: &[Entry],
    target: &str,
) -> Result<Value, MapError> {
    let mut entries = root;
    let segs = split(target);
    let problem = |p: &str| MapError::Key {
        section,
        key,
        target: target.to_owned(),
        problem: p.to_owned(),
    };
    for (i, seg) in segs.iter().enumerate() {
        let e = entries
            .iter()
            .find(|e| &*e.key == *seg)
            .ok_or_else(|| problem("is not a field of the map"))?;
        match (&e.node, i + 1 == segs.len()) {
            (Node::Obj(children), false) => entries = children,
            (Node::Value(v), true) => return Ok(v.clone()),
            _ => return Err(problem("is not a plain field with a source")),
        }
    }
    Err(problem("is not a field of the map"))
}

/// Whether an output path exists, looking through lists and zips.
fn exists(entries: &[Entry], segs: &[&str]) -> bool {
    let Some((first, rest)) = segs.split_first() else {
        return false;
    };
    let Some(e) = entries.iter().find(|e| &*e.key == *first) else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    match &e.node {
        Node::Obj(c) | Node::One(c) | Node::List { item: c, .. } => exists(c, rest),
        Node::Zip(cols) => rest.len() == 1 && cols.iter().any(|(k, _)| &**k == rest[0]),
        _ => false,
    }
}

fn toml_to_out(v: &toml::Value) -> Out<'static> {
    match v {
        toml::Value::String(s) => Out::Str(s.clone().into()),
        toml::Value::Integer(i) => Out::I64(*i),
        toml::Value::Float(f) => Out::F64(*f),
        toml::Value::Boolean(b) => Out::Bool(*b),
        toml::Value::Datetime(d) => Out::Str(d.to_string().into()),
        toml::Value::Array(a) => Out::List(a.iter().map(toml_to_out).collect()),
        toml::Value::Table(t) => Out::Obj(
            t.iter()
                .map(|(k, v)| (k.clone().into(), toml_to_out(v)))
                .collect(),
        ),
    }
}

fn eval_entries<'a, J: Json<'a>>(entries: &'a [Entry], root: J, env: &mut Env<'_>) -> Out<'a> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let v = eval_node(&e.node, root, env);
        if !(e.omit_null && v.is_null()) {
            out.push((Cow::Borrowed(&*e.key), v));
        }
    }
    Out::Obj(out)
}

fn all_null(o: &Out<'_>) -> bool {
    match o {
        Out::Obj(entries) => entries.iter().all(|(_, v)| v.is_null()),
        other => other.is_null(),
    }
}

fn eval_node<'a, J: Json<'a>>(node: &'a Node, root: J, env: &mut Env<'_>) -> Out<'a> {
    match node {
        Node::Obj(children) => eval_entries(children, root, env),
        Node::Const(c) => c.reborrow(),
        Node::Value(v) => v.eval(root, env),
        Node::List {
            src,
            item,
            limit,
            sort_by,
            counter,
        } => {
            let mut items: Vec<Out<'a>> = path::elements(src.first(root))
                .into_iter()
                .map(|el| eval_entries(item, el, env))
                // An element with nothing readable carries no information.
                .filter(|o| !all_null(o))
                .collect();
            if !sort_by.is_empty() {
                limits::sort(&mut items, sort_by);
            }
            limits::cap(&mut items, *limit, *counter, env.stats);
            Out::List(items)
        }
        Node::Zip(cols) => {
            let mut columns: Vec<Vec<Out<'a>>> = Vec::with_capacity(cols.len());
            for (_, v) in cols {
                columns.push(match list_items(v.src.first(root), true, env.stats) {
                    // Decoded from a string: nothing to borrow from once we return.
                    ListItems::Decoded(d) => {
                        d.iter().map(|el| v.apply(el, env).into_static()).collect()
                    }
                    items => items
                        .borrowed()
                        .iter()
                        .map(|el| v.apply(*el, env))
                        .collect(),
                });
            }
            let n = columns.iter().map(Vec::len).max().unwrap_or(0);
            let mut rows: Vec<Vec<(Cow<'a, str>, Out<'a>)>> = (0..n).map(|_| Vec::new()).collect();
            for ((key, _), col) in cols.iter().zip(columns) {
                for (row, v) in rows.iter_mut().zip(col) {
                    if !v.is_null() {
                        row.push((Cow::Borrowed(&**key), v));
                    }
                }
            }
            Out::List(
                rows.into_iter()
                    .filter(|r| !r.is_empty())
                    .map(Out::Obj)
                    .collect(),
            )
        }
        Node::One(children) => {
            let o = eval_entries(children, root, env);
            Out::List(if all_null(&o) { Vec::new() } else { vec![o] })
        }
    }
}

/// Whether a value is readable as a non-empty key.
pub(crate) fn key_text<'o>(o: &'o Out<'_>) -> Option<&'o str> {
    o.as_str().filter(|s| !s.trim().is_empty())
}
