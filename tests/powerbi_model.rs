//! The Power BI project in `powerbi/` (PBIP: TMDL semantic model + PBIR report), checked structurally with
//! neither Power BI nor a network:
//! - every TMDL file parses (an indentation-based reader below) and uses only properties its object has;
//! - every column binds to a column of its Synapse view (`synapse/*.sql`) with the matching type, and the
//!   partition's M selects exactly the model's columns; the model holds no PHI column or patient-level view;
//! - every relationship joins existing columns of the same type, as `powerbi/README.md` § 3 lists them;
//! - every DAX reference (`'Table'[Column]`, `[Measure]`, tables, functions) of a measure or role resolves;
//! - every KPI of `docs/kpis.md` has measures that read its Gold table;
//! - the RLS roles scope every table the entitlements scope, against `sec.user_access`;
//! - the `.pbip`, `definition.pbism`, `definition.pbir` and report files are valid JSON with the expected keys,
//!   and every field a visual shows exists in the model;
//! - the dataset refresh follows each Gold refresh in `adf/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

// ------------------------------------------------------------------------------------------------------------
// A TMDL reader: objects (`table X`, `column 'Y z'`, `measure M = <DAX>`), properties (`key: value`,
// `key = <expression>`, bare flags such as `isHidden`), `///` descriptions, multi-line expressions (indented two
// levels deeper than their declaration, or between ``` fences) and `ref` lines. Indentation is one tab per level.
mod tmdl {
    #[derive(Debug, Clone, PartialEq)]
    pub enum Prop {
        Value(String),
        Expr(String),
        Flag,
    }

    #[derive(Debug, Clone, Default)]
    pub struct Node {
        pub kind: String,
        pub name: Option<String>,
        pub expr: Option<String>,
        pub props: Vec<(String, Prop)>,
        pub children: Vec<Node>,
        pub description: Option<String>,
        pub line: usize,
    }

    impl Node {
        pub fn prop(&self, key: &str) -> Option<&Prop> {
            self.props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
        }
        /// The text of a `key: value` or `key = expression` property.
        pub fn text(&self, key: &str) -> Option<&str> {
            match self.prop(key) {
                Some(Prop::Value(v)) | Some(Prop::Expr(v)) => Some(v),
                _ => None,
            }
        }
        pub fn flag(&self, key: &str) -> bool {
            matches!(self.prop(key), Some(Prop::Flag))
        }
        pub fn kids<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
            self.children.iter().filter(move |c| c.kind == kind)
        }
        pub fn name(&self) -> &str {
            self.name.as_deref().unwrap_or("")
        }
    }

    /// Object keywords; every other word starting a line is a property.
    const OBJECTS: &[&str] = &[
        "database",
        "model",
        "table",
        "column",
        "measure",
        "partition",
        "hierarchy",
        "level",
        "relationship",
        "role",
        "tablePermission",
        "columnPermission",
        "member",
        "expression",
        "annotation",
        "extendedProperty",
        "cultureInfo",
        "linguisticMetadata",
        "perspective",
        "perspectiveTable",
        "perspectiveColumn",
        "perspectiveMeasure",
        "perspectiveHierarchy",
        "calculationItem",
        "queryGroup",
        "dataSource",
        "variation",
        "refreshPolicy",
        "dataAccessOptions",
        "calculationGroup",
        "ref",
    ];
    /// Objects declared without a name.
    const NAMELESS: &[&str] = &["refreshPolicy", "dataAccessOptions", "calculationGroup"];

    struct Line<'a> {
        no: usize,
        indent: usize,
        raw: &'a str,
    }

    enum Item {
        Obj(Node),
        Prop(String, Prop),
    }

    struct Parser<'a> {
        lines: Vec<Line<'a>>,
        pos: usize,
    }

    /// Parses one TMDL file into its top-level objects.
    pub fn parse(src: &str) -> Result<Vec<Node>, String> {
        let lines = src
            .lines()
            .enumerate()
            .map(|(i, raw)| Line {
                no: i + 1,
                indent: raw.chars().take_while(|c| *c == '\t').count(),
                raw,
            })
            .collect();
        let mut p = Parser { lines, pos: 0 };
        let mut out = Vec::new();
        for item in p.block(0)? {
            match item {
                Item::Obj(n) => out.push(n),
                Item::Prop(k, _) => return Err(format!("property `{k}` outside any object")),
            }
        }
        Ok(out)
    }

    fn split_word(s: &str) -> (&str, &str) {
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        (&s[..end], &s[end..])
    }

    /// A name, `'quoted'` (with `''` for a quote) or bare (up to white space, `=` or `.`), and the rest.
    pub fn parse_name(s: &str) -> Result<(String, &str), String> {
        if let Some(body) = s.strip_prefix('\'') {
            let mut name = String::new();
            let mut chars = body.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if matches!(chars.peek(), Some((_, '\''))) {
                        chars.next();
                        name.push('\'');
                    } else {
                        return Ok((name, &body[i + 1..]));
                    }
                } else {
                    name.push(c);
                }
            }
            Err(format!("unterminated quoted name in `{s}`"))
        } else {
            let end = s
                .find(|c: char| c.is_whitespace() || c == '=' || c == '.')
                .unwrap_or(s.len());
            if end == 0 {
                return Err(format!("missing name in `{s}`"));
            }
            Ok((s[..end].to_string(), &s[end..]))
        }
    }

    /// `Table.Column` (either part may be quoted).
    pub fn parse_column_ref(s: &str) -> Result<(String, String), String> {
        let (t, rest) = parse_name(s.trim())?;
        let rest = rest
            .strip_prefix('.')
            .ok_or_else(|| format!("`{s}` is not Table.Column"))?;
        let (c, rest) = parse_name(rest)?;
        if !rest.trim().is_empty() {
            return Err(format!("unexpected `{rest}` after `{s}`"));
        }
        Ok((t, c))
    }

    impl<'a> Parser<'a> {
        fn at_blank(&self) -> bool {
            self.lines[self.pos].raw.trim().is_empty()
        }

        /// The items at indentation `level`, up to the first line indented less.
        fn block(&mut self, level: usize) -> Result<Vec<Item>, String> {
            let mut items = Vec::new();
            let mut description: Vec<String> = Vec::new();
            while self.pos < self.lines.len() {
                if self.at_blank() {
                    self.pos += 1;
                    continue;
                }
                let (no, indent, raw): (usize, usize, &'a str) = {
                    let l = &self.lines[self.pos];
                    (l.no, l.indent, l.raw)
                };
                if indent < level {
                    break;
                }
                if indent > level {
                    return Err(format!(
                        "line {no}: indented deeper than its object's members"
                    ));
                }
                let text = &raw[indent..];
                if text.starts_with(' ') {
                    return Err(format!("line {no}: indentation must be tabs"));
                }
                if let Some(d) = text.strip_prefix("///") {
                    description.push(d.trim().to_string());
                    self.pos += 1;
                    continue;
                }
                let item = self.item(level)?;
                if !description.is_empty() {
                    match &item {
                        Item::Obj(_) => {}
                        Item::Prop(k, _) => {
                            return Err(format!(
                                "line {no}: a /// description before property `{k}`"
                            ))
                        }
                    }
                }
                items.push(match item {
                    Item::Obj(mut n) => {
                        if !description.is_empty() {
                            n.description = Some(description.join(" "));
                            description.clear();
                        }
                        Item::Obj(n)
                    }
                    p => p,
                });
            }
            if !description.is_empty() {
                return Err("a /// description with no object after it".into());
            }
            Ok(items)
        }

        fn item(&mut self, level: usize) -> Result<Item, String> {
            let (no, indent, raw): (usize, usize, &'a str) = {
                let l = &self.lines[self.pos];
                (l.no, l.indent, l.raw)
            };
            let text = raw[indent..].trim_end();
            self.pos += 1;
            let (word, rest) = split_word(text);
            if word.is_empty() {
                return Err(format!("line {no}: cannot read `{text}`"));
            }
            if let Some(value) = rest.strip_prefix(':') {
                let value = value.trim();
                if value.is_empty() {
                    return Err(format!("line {no}: property `{word}` has no value"));
                }
                return Ok(Item::Prop(word.to_string(), Prop::Value(value.to_string())));
            }
            if OBJECTS.contains(&word) {
                let mut node = Node {
                    kind: word.to_string(),
                    line: no,
                    ..Node::default()
                };
                let mut r = rest.trim_start();
                if word == "ref" {
                    let (kind, r2) = split_word(r);
                    if kind.is_empty() {
                        return Err(format!("line {no}: `ref` without an object type"));
                    }
                    let (name, r3) =
                        parse_name(r2.trim_start()).map_err(|e| format!("line {no}: {e}"))?;
                    node.name = Some(format!("{kind} {name}"));
                    r = r3.trim_start();
                } else if !NAMELESS.contains(&word) {
                    if r.is_empty() || r.starts_with('=') {
                        return Err(format!("line {no}: `{word}` without a name"));
                    }
                    let (name, r2) = parse_name(r).map_err(|e| format!("line {no}: {e}"))?;
                    node.name = Some(name);
                    r = r2.trim_start();
                }
                if let Some(e) = r.strip_prefix('=') {
                    node.expr = Some(self.expression(level, e, no)?);
                } else if !r.is_empty() {
                    return Err(format!("line {no}: unexpected `{r}` after the name"));
                }
                for item in self.block(level + 1)? {
                    match item {
                        Item::Obj(n) => node.children.push(n),
                        Item::Prop(k, v) => node.props.push((k, v)),
                    }
                }
                return Ok(Item::Obj(node));
            }
            let rest = rest.trim_start();
            if let Some(e) = rest.strip_prefix('=') {
                let e = self.expression(level, e, no)?;
                return Ok(Item::Prop(word.to_string(), Prop::Expr(e)));
            }
            if rest.is_empty() {
                return Ok(Item::Prop(word.to_string(), Prop::Flag));
            }
            Err(format!(
                "line {no}: cannot read `{text}` (neither an object, a property nor a flag)"
            ))
        }

        /// The expression after `=` on a line at `level`: the rest of the line plus the lines indented at least
        /// two levels deeper, or the lines between ``` fences.
        fn expression(&mut self, level: usize, first: &str, no: usize) -> Result<String, String> {
            let first = first.trim();
            let body = level + 2;
            let strip = |raw: &'a str| -> &'a str {
                let tabs = raw.chars().take_while(|c| *c == '\t').count().min(body);
                &raw[tabs..]
            };
            let mut out: Vec<&str> = Vec::new();
            if let Some(after) = first.strip_prefix("```") {
                if !after.trim().is_empty() {
                    out.push(after.trim());
                }
                loop {
                    let Some(l) = self.lines.get(self.pos) else {
                        return Err(format!("line {no}: ``` block never closed"));
                    };
                    self.pos += 1;
                    if l.raw.trim() == "```" {
                        break;
                    }
                    out.push(strip(l.raw));
                }
            } else {
                if !first.is_empty() {
                    out.push(first);
                }
                while let Some(l) = self.lines.get(self.pos) {
                    if l.raw.trim().is_empty() {
                        out.push("");
                    } else if l.indent >= body {
                        out.push(strip(l.raw));
                    } else {
                        break;
                    }
                    self.pos += 1;
                }
            }
            while out.last().is_some_and(|l| l.trim().is_empty()) {
                out.pop();
            }
            while out.first().is_some_and(|l| l.trim().is_empty()) {
                out.remove(0);
            }
            if out.is_empty() {
                return Err(format!("line {no}: empty expression"));
            }
            Ok(out.join("\n"))
        }
    }
}

use tmdl::{Node, Prop};

// ------------------------------------------------------------------------------------------------------------
// DAX references: `'Table'[Column]`, `Table[Column]`, `[Measure]`, table names, functions, VAR names.
#[derive(Debug, Default)]
struct DaxRefs {
    columns: Vec<(String, String)>,
    bare: Vec<String>,
    tables: Vec<String>,
    idents: Vec<String>,
    functions: BTreeSet<String>,
    vars: BTreeSet<String>,
    strings: Vec<String>,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Str(String),
    Quoted(String),
    Bracket(String),
    Ident(String),
    Num,
    Punct(char),
}

fn dax_tokens(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let until = |i: &mut usize, close: char, what: &str| -> Result<String, String> {
        let mut s = String::new();
        loop {
            match chars.get(*i) {
                None => return Err(format!("unterminated {what} in `{src}`")),
                Some(&c) if c == close => {
                    if chars.get(*i + 1) == Some(&close) {
                        s.push(close);
                        *i += 2;
                    } else {
                        *i += 1;
                        return Ok(s);
                    }
                }
                Some(&c) => {
                    s.push(c);
                    *i += 1;
                }
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if (c == '/' && next == Some('/')) || (c == '-' && next == Some('-')) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            if i + 1 >= chars.len() {
                return Err(format!("unterminated comment in `{src}`"));
            }
            i += 2;
        } else if c == '"' {
            i += 1;
            toks.push(Tok::Str(until(&mut i, '"', "string")?));
        } else if c == '\'' {
            i += 1;
            toks.push(Tok::Quoted(until(&mut i, '\'', "quoted table name")?));
        } else if c == '[' {
            i += 1;
            toks.push(Tok::Bracket(until(&mut i, ']', "[reference]")?));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            toks.push(Tok::Num);
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            toks.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            toks.push(Tok::Punct(c));
            i += 1;
        }
    }
    Ok(toks)
}

fn dax_refs(src: &str) -> Result<DaxRefs, String> {
    let toks = dax_tokens(src)?;
    let mut r = DaxRefs::default();
    let mut i = 0;
    while i < toks.len() {
        match (&toks[i], toks.get(i + 1)) {
            (Tok::Quoted(t), Some(Tok::Bracket(c))) | (Tok::Ident(t), Some(Tok::Bracket(c))) => {
                r.columns.push((t.clone(), c.clone()));
                i += 2;
                continue;
            }
            (Tok::Quoted(t), _) => r.tables.push(t.clone()),
            (Tok::Bracket(b), _) => r.bare.push(b.clone()),
            (Tok::Str(s), _) => r.strings.push(s.clone()),
            (Tok::Ident(f), Some(Tok::Punct('('))) => {
                r.functions.insert(f.to_uppercase());
            }
            (Tok::Ident(v), Some(Tok::Ident(name))) if v.eq_ignore_ascii_case("VAR") => {
                r.vars.insert(name.clone());
                i += 2;
                continue;
            }
            (Tok::Ident(x), _) => r.idents.push(x.clone()),
            _ => {}
        }
        i += 1;
    }
    Ok(r)
}

/// Words DAX reads as keywords, not names.
const DAX_KEYWORDS: &[&str] = &[
    "VAR", "RETURN", "IN", "NOT", "AND", "OR", "TRUE", "FALSE", "ASC", "DESC", "SECOND", "MINUTE",
    "HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR",
];
/// The DAX functions the model may call (a typo is an unknown function).
const DAX_FUNCTIONS: &[&str] = &[
    "ADDCOLUMNS",
    "ALL",
    "AND",
    "AVERAGE",
    "AVERAGEX",
    "BLANK",
    "CALCULATE",
    "CALCULATETABLE",
    "COALESCE",
    "CONTAINS",
    "COUNTROWS",
    "DATEDIFF",
    "DISTINCTCOUNT",
    "DIVIDE",
    "FALSE",
    "FILTER",
    "HASONEVALUE",
    "IF",
    "ISBLANK",
    "ISEMPTY",
    "ISFILTERED",
    "KEEPFILTERS",
    "LOOKUPVALUE",
    "MAX",
    "MAXX",
    "MEDIAN",
    "MIN",
    "MINX",
    "NOT",
    "OR",
    "PERCENTILE.INC",
    "REMOVEFILTERS",
    "SELECTCOLUMNS",
    "SELECTEDVALUE",
    "SUM",
    "SUMMARIZE",
    "SUMX",
    "SWITCH",
    "TREATAS",
    "TRUE",
    "USERPRINCIPALNAME",
    "UTCNOW",
    "VALUES",
];

// ------------------------------------------------------------------------------------------------------------
// Paths and loading.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}
const PROJECT: &str = "PatientFlow";
fn powerbi() -> PathBuf {
    root().join("powerbi")
}
fn semantic_model() -> PathBuf {
    powerbi().join(format!("{PROJECT}.SemanticModel"))
}
fn definition() -> PathBuf {
    semantic_model().join("definition")
}
fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
fn tmdl_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "tmdl"))
        .collect();
    files.sort();
    files
}
fn parse_file(path: &Path) -> Vec<Node> {
    tmdl::parse(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}
fn assert_none(problems: Vec<String>, what: &str) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

#[derive(Debug)]
struct Column {
    data_type: Option<String>,
    source_column: Option<String>,
    sort_by: Option<String>,
}
#[derive(Debug)]
struct Measure {
    table: String,
    name: String,
    dax: String,
    description: Option<String>,
    format: Option<String>,
}
#[derive(Debug)]
struct Partition {
    mode: Option<String>,
    source: Option<String>,
}
#[derive(Debug)]
struct Table {
    hidden: bool,
    columns: BTreeMap<String, Column>,
    partitions: Vec<Partition>,
    refresh_policy: Option<Node>,
}
#[derive(Debug)]
struct Rel {
    name: String,
    from: (String, String),
    to: (String, String),
    active: bool,
}
#[derive(Debug)]
struct Role {
    permission: Option<String>,
    filters: BTreeMap<String, String>,
}
#[derive(Debug)]
struct Model {
    tables: BTreeMap<String, Table>,
    measures: Vec<Measure>,
    rels: Vec<Rel>,
    roles: BTreeMap<String, Role>,
    /// Shared expressions (parameters) by name: their M text.
    params: BTreeMap<String, String>,
}

impl Model {
    fn measure(&self, name: &str) -> Option<&Measure> {
        self.measures.iter().find(|m| m.name == name)
    }
    fn mode(&self, table: &str) -> Option<&str> {
        self.tables[table]
            .partitions
            .first()
            .and_then(|p| p.mode.as_deref())
    }
}

fn load_model() -> Model {
    let defn = definition();
    let mut tables = BTreeMap::new();
    let mut measures = Vec::new();
    for path in tmdl_files(&defn.join("tables")) {
        let nodes = parse_file(&path);
        let [t] = nodes.as_slice() else {
            panic!(
                "{}: expected exactly one object, found {}",
                path.display(),
                nodes.len()
            );
        };
        assert_eq!(t.kind, "table", "{}", path.display());
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        assert_eq!(
            t.name(),
            stem,
            "{}: the table is named after its file",
            path.display()
        );
        let mut columns = BTreeMap::new();
        for c in t.kids("column") {
            let old = columns.insert(
                c.name().to_string(),
                Column {
                    data_type: c.text("dataType").map(str::to_string),
                    source_column: c.text("sourceColumn").map(str::to_string),
                    sort_by: c.text("sortByColumn").map(str::to_string),
                },
            );
            assert!(
                old.is_none(),
                "{}: column {} twice",
                path.display(),
                c.name()
            );
        }
        for m in t.kids("measure") {
            measures.push(Measure {
                table: stem.clone(),
                name: m.name().to_string(),
                dax: m.expr.clone().unwrap_or_default(),
                description: m.description.clone(),
                format: m.text("formatString").map(str::to_string),
            });
        }
        let partitions = t
            .kids("partition")
            .map(|p| Partition {
                mode: p.text("mode").map(str::to_string),
                source: p.text("source").map(str::to_string),
            })
            .collect();
        tables.insert(
            stem,
            Table {
                hidden: t.flag("isHidden"),
                columns,
                partitions,
                refresh_policy: t.kids("refreshPolicy").next().cloned(),
            },
        );
    }
    let mut rels = Vec::new();
    for r in parse_file(&defn.join("relationships.tmdl")) {
        assert_eq!(
            r.kind, "relationship",
            "relationships.tmdl holds relationships only"
        );
        let col = |key: &str| {
            let v = r
                .text(key)
                .unwrap_or_else(|| panic!("relationship {} has no {key}", r.name()));
            tmdl::parse_column_ref(v).unwrap_or_else(|e| panic!("relationship {}: {e}", r.name()))
        };
        rels.push(Rel {
            name: r.name().to_string(),
            from: col("fromColumn"),
            to: col("toColumn"),
            active: r.text("isActive") != Some("false"),
        });
    }
    let mut roles = BTreeMap::new();
    for path in tmdl_files(&defn.join("roles")) {
        let nodes = parse_file(&path);
        let [r] = nodes.as_slice() else {
            panic!("{}: expected exactly one role", path.display());
        };
        assert_eq!(r.kind, "role", "{}", path.display());
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        assert_eq!(
            r.name(),
            stem,
            "{}: the role is named after its file",
            path.display()
        );
        let mut filters = BTreeMap::new();
        for tp in r.kids("tablePermission") {
            let f = tp
                .expr
                .clone()
                .or_else(|| tp.text("filterExpression").map(str::to_string))
                .unwrap_or_default();
            filters.insert(tp.name().to_string(), f);
        }
        roles.insert(
            stem,
            Role {
                permission: r.text("modelPermission").map(str::to_string),
                filters,
            },
        );
    }
    let params = parse_file(&defn.join("expressions.tmdl"))
        .into_iter()
        .map(|e| {
            assert_eq!(
                e.kind, "expression",
                "expressions.tmdl holds expressions only"
            );
            (e.name().to_string(), e.expr.clone().unwrap_or_default())
        })
        .collect();
    Model {
        tables,
        measures,
        rels,
        roles,
        params,
    }
}

// ------------------------------------------------------------------------------------------------------------
// Synapse views: each view's output columns and their SQL types, from `CREATE OR ALTER VIEW s.v AS ...`:
// `SELECT * FROM OPENROWSET(...) WITH (col TYPE, ...)`, `SELECT x.* FROM s.other x ...`, or an explicit list.
type Views = BTreeMap<String, Vec<(String, Option<String>)>>;

fn matching_paren(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in s[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            out.push(cur.trim().to_string());
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn synapse_views() -> Views {
    let mut views = Views::new();
    for file in ["01_gold_views.sql", "02_row_level_security.sql"] {
        let mut batches = vec![String::new()];
        for line in read(&root().join("synapse").join(file)).lines() {
            let line = line.split("--").next().unwrap_or("");
            if line.trim().eq_ignore_ascii_case("GO") {
                batches.push(String::new());
            } else {
                let last = batches.last_mut().unwrap();
                last.push_str(line);
                last.push('\n');
            }
        }
        for batch in &batches {
            let upper = batch.to_ascii_uppercase();
            let Some(at) = upper.find("CREATE OR ALTER VIEW ") else {
                continue;
            };
            let rest = &batch[at + "CREATE OR ALTER VIEW ".len()..];
            let name = rest.split_whitespace().next().unwrap().to_string();
            let body_at = rest.to_ascii_uppercase().find(" AS").expect("view AS") + 3;
            let body = &rest[body_at..];
            let ub = body.to_ascii_uppercase();
            let cols: Vec<(String, Option<String>)> = if let Some(o) = ub.find("OPENROWSET(") {
                let open = o + "OPENROWSET".len();
                let close = matching_paren(body, open).expect("OPENROWSET(...)");
                let after = &body[close + 1..];
                let w = after
                    .to_ascii_uppercase()
                    .find("WITH")
                    .expect("OPENROWSET ... WITH");
                let wopen = close + 1 + w + after[w..].find('(').expect("WITH (");
                let wclose = matching_paren(body, wopen).expect("WITH (...)");
                split_top(&body[wopen + 1..wclose])
                    .into_iter()
                    .map(|c| {
                        let mut parts = c.split_whitespace();
                        let n = parts.next().unwrap().to_string();
                        let t = parts
                            .next()
                            .map(|t| t.split('(').next().unwrap().to_ascii_uppercase());
                        (n, t)
                    })
                    .collect()
            } else {
                let sel = ub.find("SELECT").expect("SELECT") + "SELECT".len();
                let from = ub[sel..].find("FROM").expect("FROM") + sel;
                let list = body[sel..from].trim();
                if let Some(alias) = list.strip_suffix(".*") {
                    let after_from: Vec<&str> = body[from + 4..].split_whitespace().collect();
                    assert_eq!(
                        after_from.get(1).copied(),
                        Some(alias),
                        "{name}: SELECT {alias}.* FROM v {alias}"
                    );
                    views
                        .get(after_from[0])
                        .unwrap_or_else(|| {
                            panic!("{name} selects from unknown view {}", after_from[0])
                        })
                        .clone()
                } else {
                    split_top(list)
                        .into_iter()
                        .map(|item| {
                            let n = if let Some((alias, _)) = item.split_once('=') {
                                alias.trim().to_string()
                            } else if let Some(p) = item.to_ascii_uppercase().rfind(" AS ") {
                                item[p + 4..].trim().to_string()
                            } else {
                                item.rsplit('.').next().unwrap().trim().to_string()
                            };
                            (n, None)
                        })
                        .collect()
                }
            };
            views.insert(name, cols);
        }
    }
    views
}

/// The TMDL data type of a Synapse column type.
fn tmdl_type(sql: &str) -> Option<&'static str> {
    Some(match sql {
        "VARCHAR" | "NVARCHAR" | "CHAR" | "NCHAR" => "string",
        "BIGINT" | "INT" | "SMALLINT" | "TINYINT" => "int64",
        "FLOAT" | "REAL" => "double",
        "DECIMAL" | "NUMERIC" => "decimal",
        "BIT" => "boolean",
        "DATETIME2" | "DATETIME" | "DATE" => "dateTime",
        _ => return None,
    })
}

/// `Schema` and `Item` of `Source{[Schema = "s", Item = "v"]}` in an M query.
fn m_binding(m: &str) -> Option<(String, String)> {
    let quoted_after = |key: &str| -> Option<String> {
        let at = m.find(key)? + key.len();
        let rest = m[at..]
            .trim_start()
            .strip_prefix('=')?
            .trim_start()
            .strip_prefix('"')?;
        Some(rest[..rest.find('"')?].to_string())
    };
    Some((quoted_after("Schema")?, quoted_after("Item")?))
}

/// The column names of `Table.SelectColumns(x, {"a", "b"})` in an M query.
fn m_selected(m: &str) -> Option<Vec<String>> {
    let at = m.find("Table.SelectColumns(")? + "Table.SelectColumns".len();
    let close = matching_paren(m, at)?;
    let list = &m[at..close];
    let list = &list[list.find('{')?..];
    Some(
        list.split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

// ------------------------------------------------------------------------------------------------------------
// What the model must be.

/// The Gold views the dashboard needs (and the entitlement view), by model table.
const TABLES: &[(&str, &str)] = &[
    ("dim_hospital", "gold.dim_hospital"),
    ("dim_department", "gold.dim_department"),
    ("dim_date", "gold.dim_date"),
    ("dim_time", "gold.dim_time"),
    ("fact_census_hourly", "gold.fact_census_hourly"),
    ("fact_encounter", "gold.fact_encounter"),
    ("fact_location_stay", "gold.fact_location_stay"),
    ("kpi_occupancy_current", "gold.kpi_occupancy_current"),
    (
        "kpi_occupancy_current_hospital",
        "gold.kpi_occupancy_current_hospital",
    ),
    ("kpi_sex_distribution", "gold.kpi_sex_distribution"),
    ("kpi_age_band_monthly", "gold.kpi_age_band_monthly"),
    (
        "kpi_alos_department_monthly",
        "gold.kpi_alos_department_monthly",
    ),
    (
        "kpi_alos_hospital_monthly",
        "gold.kpi_alos_hospital_monthly",
    ),
    ("kpi_current_los", "gold.kpi_current_los"),
    ("kpi_admission_wait", "gold.kpi_admission_wait"),
    ("kpi_bottlenecks", "gold.kpi_bottlenecks"),
    ("kpi_midnight_census", "gold.kpi_midnight_census"),
    ("user_access", "sec.user_access"),
];
/// Columns that identify a patient or an encounter (or give an exact birth date / age): never in the model.
const PHI_COLUMNS: &[&str] = &[
    "mrn",
    "family_name",
    "given_name",
    "birth_date",
    "birth_year",
    "street",
    "zip",
    "zip3",
    "visit_number",
    "patient_key",
    "encounter_key",
    "patient_sk",
    "age_at_arrival",
    "age_at_admit",
    "age_at_start",
    "room",
    "bed",
];
/// Views with one row per patient, never bound.
const PATIENT_VIEWS: &[&str] = &[
    "gold.dim_patient",
    "gold.kpi_los_patient",
    "gold_secure.dim_patient_masked",
];
/// Tables with one row per encounter or stay.
const PATIENT_LEVEL: &[&str] = &["fact_encounter", "fact_location_stay", "kpi_current_los"];
/// Tables with hospital-wide rows (no department): outside a department scope.
const HOSPITAL_LEVEL: &[&str] = &[
    "kpi_occupancy_current_hospital",
    "kpi_alos_hospital_monthly",
];
/// Measures that return text and so carry no format string.
const TEXT_MEASURES: &[&str] = &["Occupancy band now"];

/// Every KPI section of docs/kpis.md (its number) → other Gold tables its text uses for the KPI, and the measures
/// that answer it. The test requires that these measures exist, that each reads a Gold table of the section (named in
/// its heading or `Tables:` list, or one of the others), and that together they read every table the section names.
type KpiMap = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);
const KPI_MEASURES: &[KpiMap] = &[
    (
        "1.1",
        &[],
        &[
            "Occupancy % now",
            "Inpatient occupancy % now",
            "ED occupancy % now",
            "Occupied beds now",
            "Staffed beds now",
            "Departments at or over 85 % now",
            "Hospital inpatient occupancy % now",
            "Hospital ED occupancy % now",
        ],
    ),
    (
        "1.2",
        &[],
        &[
            "Occupancy % (hourly)",
            "Inpatient occupancy % (hourly)",
            "Occupancy % (latest hour)",
            "Average occupied beds",
            "Peak occupied beds",
            "Arrivals",
            "Admissions",
            "Discharges",
            "Transfers in",
            "Transfers out",
        ],
    ),
    (
        "1.3",
        &[],
        &[
            "KH03 occupancy %",
            "KH03 inpatient occupancy %",
            "Same-day stays",
            "Inpatient days",
        ],
    ),
    (
        "2",
        // "Over time: the occupied_female/male/other/unknown_sex columns of the hourly census."
        &["fact_census_hourly"],
        &[
            "Sex share % now",
            "Female share % now",
            "Male share % now",
            "Female share % (hourly)",
        ],
    ),
    (
        "3",
        // "Current occupancy by band is in gold_kpi_occupancy_current"; the census holds bands per hour.
        &["kpi_occupancy_current", "fact_census_hourly"],
        &[
            "Admissions by age band",
            "Discharges by age band",
            "ALOS by age band (hours)",
            "Average occupied beds by age band",
            "Age band share of occupied bed-hours",
            "Occupied beds now, age 85+",
            "Average occupied beds, age 85+",
        ],
    ),
    (
        "4",
        // ALOS from the encounters' los_hours (docs/kpis.md § 8 reproduces it so).
        &["fact_encounter"],
        &[
            "ALOS (hours)",
            "ALOS (days)",
            "Hospital ALOS (hours)",
            "Hospital ALOS (days)",
            "ALOS from encounters (hours)",
            "In-house admitted patients",
            "Stays 7+ days now",
            "Stays 14+ days now",
            "Stays 21+ days now",
        ],
    ),
    (
        "5",
        // Percentiles over the encounters' admission_wait_minutes for selections the mart has no row for.
        &["fact_encounter"],
        &[
            "Admission wait median (min)",
            "Admission wait p90 (min)",
            "Admission wait mean (min)",
            "Waits over 4 h",
            "Admission wait median, from encounters (min)",
            "Admission wait p90, from encounters (min)",
        ],
    ),
    (
        "6",
        // "The census columns ed_boarders (on ED rows) and boarders_waiting ... hold it per hour."
        &["fact_census_hourly"],
        &[
            "Bottleneck episodes",
            "Ongoing bottlenecks",
            "High-occupancy episode hours",
            "ED boarding episode hours",
            "Long-wait episode hours",
            "Hours at or over 85 %",
            "Hours at or over 95 %",
            "ED boarder-hours",
        ],
    ),
];
/// Gold tables docs/kpis.md names that the model leaves out on purpose, and why.
const KPI_TABLES_LEFT_OUT: &[(&str, &str)] = &[(
    "kpi_los_patient",
    "one row per patient keyed by patient_key (hospital|MRN): PHI, not an aggregate",
)];

/// Allowed properties (key: value, key = expression or flags) per object kind.
fn allowed_props(kind: &str) -> &'static [&'static str] {
    match kind {
        "database" => &[
            "compatibilityLevel",
            "compatibilityMode",
            "language",
            "id",
            "description",
        ],
        "model" => &[
            "culture",
            "defaultPowerBIDataSourceVersion",
            "sourceQueryCulture",
            "discourageImplicitMeasures",
            "discourageCompositeModels",
            "defaultMode",
            "collation",
            "description",
            "forceUniqueNames",
            "valueFilterBehavior",
            "dataSourceVariablesOverrideBehavior",
        ],
        "dataAccessOptions" => &["legacyRedirects", "returnErrorValuesAsNull", "fastCombine"],
        "table" => &[
            "isHidden",
            "isPrivate",
            "dataCategory",
            "description",
            "lineageTag",
            "sourceLineageTag",
            "excludeFromModelRefresh",
            "showAsVariationsOnly",
            "changedProperty",
        ],
        "column" => &[
            "dataType",
            "sourceColumn",
            "summarizeBy",
            "formatString",
            "isHidden",
            "isKey",
            "isNullable",
            "isUnique",
            "sortByColumn",
            "dataCategory",
            "displayFolder",
            "description",
            "lineageTag",
            "sourceLineageTag",
            "sourceProviderType",
            "isAvailableInMdx",
            "isDefaultLabel",
            "isDefaultImage",
            "alignment",
            "encodingHint",
            "changedProperty",
            "type",
            "expression",
        ],
        "measure" => &[
            "formatString",
            "displayFolder",
            "description",
            "isHidden",
            "lineageTag",
            "sourceLineageTag",
            "dataCategory",
            "changedProperty",
            "formatStringDefinition",
            "detailRowsDefinition",
        ],
        "partition" => &["mode", "source", "queryGroup", "description", "dataView"],
        "refreshPolicy" => &[
            "policyType",
            "rollingWindowGranularity",
            "rollingWindowPeriods",
            "incrementalGranularity",
            "incrementalPeriods",
            "incrementalPeriodsOffset",
            "mode",
            "pollingExpression",
            "sourceExpression",
        ],
        "relationship" => &[
            "fromColumn",
            "toColumn",
            "isActive",
            "fromCardinality",
            "toCardinality",
            "crossFilteringBehavior",
            "securityFilteringBehavior",
            "joinOnDateBehavior",
            "relyOnReferentialIntegrity",
        ],
        "role" => &["modelPermission", "description"],
        "tablePermission" => &["filterExpression", "metadataPermission"],
        "expression" => &[
            "description",
            "kind",
            "lineageTag",
            "queryGroup",
            "mAttributes",
        ],
        _ => &[],
    }
}

/// Allowed child objects per kind (`annotation` anywhere but on annotations).
fn allowed_children(kind: &str) -> &'static [&'static str] {
    match kind {
        "model" => &["dataAccessOptions", "annotation", "queryGroup"],
        "table" => &[
            "column",
            "measure",
            "partition",
            "hierarchy",
            "refreshPolicy",
            "annotation",
        ],
        "column" | "measure" | "partition" | "relationship" | "expression" | "tablePermission" => {
            &["annotation"]
        }
        "role" => &["tablePermission", "member", "annotation"],
        _ => &[],
    }
}

fn enum_ok(kind: &str, key: &str, value: &str) -> bool {
    let allowed: &[&str] = match (kind, key) {
        ("column", "dataType") => &[
            "string", "int64", "double", "dateTime", "decimal", "boolean", "binary",
        ],
        ("column", "summarizeBy") => &[
            "none",
            "sum",
            "min",
            "max",
            "count",
            "average",
            "distinctCount",
            "default",
        ],
        ("partition", "mode") => &["import", "directQuery", "dual"],
        ("relationship", "isActive") => &["true", "false"],
        ("relationship", "crossFilteringBehavior") => {
            &["oneDirection", "bothDirections", "automatic"]
        }
        ("relationship", "fromCardinality") | ("relationship", "toCardinality") => {
            &["none", "one", "many"]
        }
        ("role", "modelPermission") => &["none", "read", "readRefresh", "refresh", "administrator"],
        ("refreshPolicy", "policyType") => &["basic"],
        ("refreshPolicy", "rollingWindowGranularity")
        | ("refreshPolicy", "incrementalGranularity") => &["day", "month", "quarter", "year"],
        ("refreshPolicy", "mode") => &["import", "hybrid"],
        _ => return true,
    };
    allowed.contains(&value)
}

fn check_node(file: &str, n: &Node, problems: &mut Vec<String>) {
    for (k, v) in &n.props {
        if !allowed_props(&n.kind).contains(&k.as_str()) {
            problems.push(format!(
                "{file}:{}: {} {} has no property `{k}`",
                n.line,
                n.kind,
                n.name()
            ));
        }
        if let Prop::Value(v) = v {
            if !enum_ok(&n.kind, k, v) {
                problems.push(format!(
                    "{file}:{}: {} {}: `{k}: {v}` is not a valid value",
                    n.line,
                    n.kind,
                    n.name()
                ));
            }
        }
    }
    for c in &n.children {
        if !allowed_children(&n.kind).contains(&c.kind.as_str()) {
            problems.push(format!(
                "{file}:{}: a {} cannot hold a {}",
                c.line, n.kind, c.kind
            ));
        }
        check_node(file, c, problems);
    }
}

// ------------------------------------------------------------------------------------------------------------
// Tests.

#[test]
fn the_tmdl_reader_rejects_malformed_files() {
    let ok = "table t\n\tmeasure 'a b' =\n\t\t\tSUM(t[x])\n\t\tformatString: 0\n\n\tcolumn x\n\t\tdataType: int64\n\t\tsourceColumn: x\n";
    let nodes = tmdl::parse(ok).expect("a valid table");
    assert_eq!(
        nodes[0].kids("measure").next().unwrap().expr.as_deref(),
        Some("SUM(t[x])")
    );
    let fenced =
        "table t\n\tmeasure m = ```\n\t\t\tSUM(\n\t\t\t  t[x])\n\t\t\t```\n\t\tformatString: 0\n";
    let m = tmdl::parse(fenced).unwrap()[0].children[0].clone();
    assert_eq!(m.expr.as_deref(), Some("SUM(\n  t[x])"));
    assert_eq!(m.text("formatString"), Some("0"));
    for (bad, why) in [
        ("table t\n    column x\n", "space indentation"),
        ("table t\n\t\tcolumn x\n", "child two levels deep"),
        ("dataType: int64\n", "property outside an object"),
        ("table t\n\tcolumn\n", "object without a name"),
        (
            "table t\n\tmeasure m = ```\n\t\t\tSUM(1)\n",
            "unclosed ``` block",
        ),
        (
            "table t\n\tmeasure m =\n\tformatString: 0\n",
            "empty expression",
        ),
        ("table t\n\tthis is not tmdl\n", "unreadable line"),
        ("table 'unterminated\n", "unterminated quoted name"),
        ("/// dangling\n", "description without object"),
    ] {
        assert!(
            tmdl::parse(bad).is_err(),
            "the reader accepted {why}: {bad:?}"
        );
    }
    let refs =
        dax_refs("VAR v = 'my t'[a b] RETURN CALCULATE([m], t[c] = \"x\" /* [no] */) // [no]")
            .unwrap();
    assert_eq!(
        refs.columns,
        vec![("my t".into(), "a b".into()), ("t".into(), "c".into())]
    );
    assert_eq!(refs.bare, vec!["m".to_string()]);
    assert!(refs.vars.contains("v") && refs.functions.contains("CALCULATE"));
    assert!(dax_refs("SUM(t[x]").is_ok() && dax_refs("\"open").is_err());
}

#[test]
fn every_tmdl_file_parses_and_uses_only_known_properties() {
    let defn = definition();
    let mut problems = Vec::new();
    let mut files: Vec<PathBuf> = [
        "database.tmdl",
        "model.tmdl",
        "expressions.tmdl",
        "relationships.tmdl",
    ]
    .iter()
    .map(|f| defn.join(f))
    .collect();
    files.extend(tmdl_files(&defn.join("tables")));
    files.extend(tmdl_files(&defn.join("roles")));
    let mut refs = BTreeSet::new();
    for path in &files {
        let rel = path.strip_prefix(&defn).unwrap().display().to_string();
        let nodes = parse_file(path);
        assert!(!nodes.is_empty(), "{rel} is empty");
        for n in &nodes {
            let top_ok = match rel.as_str() {
                "database.tmdl" => n.kind == "database",
                "model.tmdl" => ["model", "annotation", "ref"].contains(&n.kind.as_str()),
                "expressions.tmdl" => n.kind == "expression",
                "relationships.tmdl" => n.kind == "relationship",
                r if r.starts_with("tables") => n.kind == "table",
                _ => n.kind == "role",
            };
            if !top_ok {
                problems.push(format!(
                    "{rel}:{}: a {} does not belong in this file",
                    n.line, n.kind
                ));
            }
            if n.kind == "ref" {
                refs.insert(n.name().to_string());
            }
            check_node(&rel, n, &mut problems);
        }
    }
    let database = parse_file(&defn.join("database.tmdl"));
    let level: u32 = database[0]
        .text("compatibilityLevel")
        .and_then(|v| v.parse().ok())
        .expect("database compatibilityLevel");
    assert!(
        level >= 1567,
        "compatibility level {level}: Power BI models need 1567 or later for TMDL in PBIP"
    );
    let model = load_model();
    let expected: BTreeSet<String> = model
        .tables
        .keys()
        .map(|t| format!("table {t}"))
        .chain(model.roles.keys().map(|r| format!("role {r}")))
        .collect();
    if refs != expected {
        problems.push(format!(
            "model.tmdl refs {refs:?} differ from the table and role files {expected:?}"
        ));
    }
    assert_none(problems, "TMDL structure");
}

#[test]
fn columns_bind_to_the_synapse_views_with_their_types() {
    let model = load_model();
    let views = synapse_views();
    let mut problems = Vec::new();
    let names: BTreeSet<&str> = model.tables.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = TABLES.iter().map(|(t, _)| *t).collect();
    if names != expected {
        problems.push(format!("model tables {names:?}, expected {expected:?}"));
    }
    for (tname, table) in &model.tables {
        if table.partitions.len() != 1 {
            problems.push(format!(
                "{tname}: {} partitions, expected one",
                table.partitions.len()
            ));
            continue;
        }
        let p = &table.partitions[0];
        let Some(source) = p.source.as_deref() else {
            problems.push(format!("{tname}: the partition has no M source"));
            continue;
        };
        if !source.contains("Sql.Database(SqlEndpoint, Database)") {
            problems.push(format!(
                "{tname}: the M source does not call Sql.Database(SqlEndpoint, Database)"
            ));
        }
        let Some((schema, item)) = m_binding(source) else {
            problems.push(format!(
                "{tname}: no Source{{[Schema = .., Item = ..]}} in the M source"
            ));
            continue;
        };
        let view_name = format!("{schema}.{item}");
        if let Some((_, want)) = TABLES.iter().find(|(t, _)| t == tname) {
            if *want != view_name {
                problems.push(format!("{tname} binds to {view_name}, expected {want}"));
            }
        }
        let Some(view) = views.get(&view_name) else {
            problems.push(format!(
                "{tname} binds to {view_name}, which synapse/*.sql does not create"
            ));
            continue;
        };
        let selected: BTreeSet<String> =
            m_selected(source).unwrap_or_default().into_iter().collect();
        let sources: BTreeSet<String> = table
            .columns
            .values()
            .filter_map(|c| c.source_column.clone())
            .collect();
        if selected != sources {
            problems.push(format!(
                "{tname}: Table.SelectColumns selects {selected:?} but the columns read {sources:?}"
            ));
        }
        for (cname, c) in &table.columns {
            let (Some(dt), Some(src)) = (c.data_type.as_deref(), c.source_column.as_deref()) else {
                problems.push(format!(
                    "{tname}[{cname}]: needs both dataType and sourceColumn"
                ));
                continue;
            };
            if cname != src {
                problems.push(format!(
                    "{tname}[{cname}]: named differently from its view column {src}"
                ));
            }
            match view.iter().find(|(n, _)| n == src) {
                None => problems.push(format!("{tname}[{cname}]: {view_name} has no column {src}")),
                Some((_, sql)) => {
                    let want = sql.as_deref().and_then(tmdl_type);
                    if want != Some(dt) {
                        problems.push(format!(
                            "{tname}[{cname}]: dataType {dt}, but {view_name}.{src} is {sql:?} (→ {want:?})"
                        ));
                    }
                }
            }
            if let Some(s) = &c.sort_by {
                if !table.columns.contains_key(s) {
                    problems.push(format!(
                        "{tname}[{cname}]: sortByColumn {s} is not a column of {tname}"
                    ));
                }
            }
        }
        if let Some(policy) = &table.refresh_policy {
            let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            let policy_src = policy.text("sourceExpression").unwrap_or_default();
            if norm(policy_src) != norm(source) {
                problems.push(format!(
                    "{tname}: refreshPolicy sourceExpression differs from the partition source"
                ));
            }
            if !(source.contains(">= RangeStart")
                && source.contains("< RangeEnd")
                && !source.contains("<= RangeEnd"))
            {
                problems.push(format!("{tname}: incremental refresh must filter [col] >= RangeStart and [col] < RangeEnd"));
            }
            for param in ["RangeStart", "RangeEnd"] {
                if !model
                    .params
                    .get(param)
                    .is_some_and(|m| m.contains("Type=\"DateTime\""))
                {
                    problems.push(format!(
                        "{tname}: incremental refresh needs the DateTime parameter {param}"
                    ));
                }
            }
        }
    }
    for param in ["SqlEndpoint", "Database"] {
        match model.params.get(param) {
            Some(m) if m.contains("IsParameterQuery=true") && m.contains("Type=\"Text\"") => {}
            _ => problems.push(format!(
                "parameter {param} is not a required text parameter in expressions.tmdl"
            )),
        }
    }
    assert_none(problems, "column bindings");
}

#[test]
fn the_model_holds_no_phi() {
    let model = load_model();
    let mut problems = Vec::new();
    for (tname, table) in &model.tables {
        let source = table
            .partitions
            .iter()
            .filter_map(|p| p.source.as_deref())
            .collect::<String>();
        if let Some((s, v)) = m_binding(&source) {
            if PATIENT_VIEWS.contains(&format!("{s}.{v}").as_str()) {
                problems.push(format!("{tname} loads the patient-level view {s}.{v}"));
            }
        }
        for (cname, c) in &table.columns {
            let src = c.source_column.as_deref().unwrap_or(cname);
            if PHI_COLUMNS.contains(&cname.as_str()) || PHI_COLUMNS.contains(&src) {
                problems.push(format!(
                    "{tname}[{cname}] is an identifier or exact birth date / age (PHI)"
                ));
            }
            if PATIENT_LEVEL.contains(&tname.as_str())
                && c.data_type.as_deref() == Some("dateTime")
                && cname != "as_of"
            {
                problems.push(format!(
                    "{tname}[{cname}]: an exact date-time of one patient's care"
                ));
            }
        }
    }
    for m in &model.measures {
        for (t, c) in dax_refs(&m.dax).map(|r| r.columns).unwrap_or_default() {
            if PHI_COLUMNS.contains(&c.as_str()) {
                problems.push(format!("measure {} reads {t}[{c}]", m.name));
            }
        }
    }
    assert_none(problems, "PHI in the aggregate model");
}

/// A `## N. Title` section of powerbi/README.md.
fn readme_section(prefix: &str) -> String {
    let readme = read(&powerbi().join("README.md"));
    readme
        .split("\n## ")
        .find(|s| s.starts_with(prefix))
        .unwrap_or_else(|| panic!("powerbi/README.md has no section `## {prefix}`"))
        .to_string()
}

#[test]
fn storage_modes_are_those_readme_documents() {
    let model = load_model();
    let mut documented: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in readme_section("2. Storage modes")
        .lines()
        .filter(|l| l.starts_with("| `"))
    {
        let cells: Vec<&str> = line.split('|').collect();
        let mode = cells
            .get(2)
            .map(|c| c.trim().trim_matches('*').to_string())
            .unwrap_or_default();
        for t in cells[1].split('`').skip(1).step_by(2) {
            documented
                .entry(t.to_string())
                .or_default()
                .push(mode.clone());
        }
    }
    let mut problems = Vec::new();
    for t in model.tables.keys() {
        let mode = model.mode(t).unwrap_or("(none)").to_string();
        match documented.get(t).map(Vec::as_slice) {
            Some([m]) if *m == mode => {}
            other => problems.push(format!("{t}: mode {mode}, README § 2 says {other:?}")),
        }
    }
    for t in documented.keys() {
        if !model.tables.contains_key(t) {
            problems.push(format!("README § 2 lists {t}, which is not in the model"));
        }
    }
    assert_none(problems, "storage modes");
}

/// `from[col]`, `to[col]`, active, from powerbi/README.md § 3.
fn readme_relationships() -> BTreeSet<(String, String, String, String, bool)> {
    let section = readme_section("3. Relationships");
    let col = |cell: &str| -> Option<(String, String)> {
        let s = cell.trim().trim_matches('`');
        let (t, c) = s.split_once('[')?;
        Some((t.to_string(), c.strip_suffix(']')?.to_string()))
    };
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').collect();
            let (ft, fc) = col(cells.get(1)?)?;
            let (tt, tc) = col(cells.get(2)?)?;
            let active = match cells.get(3)?.trim() {
                "active" => true,
                "inactive" => false,
                other => panic!("README § 3: `{other}` is neither active nor inactive in {l}"),
            };
            Some((ft, fc, tt, tc, active))
        })
        .collect()
}

#[test]
fn relationships_join_existing_columns_of_the_same_type() {
    let model = load_model();
    let mut problems = Vec::new();
    let mut active_pairs = BTreeMap::new();
    let mut names = BTreeSet::new();
    for r in &model.rels {
        if !names.insert(r.name.clone()) {
            problems.push(format!("relationship name {} twice", r.name));
        }
        let ty = |(t, c): &(String, String)| -> Option<String> {
            model.tables.get(t)?.columns.get(c)?.data_type.clone()
        };
        match (ty(&r.from), ty(&r.to)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => problems.push(format!("{}: {a} joins {b}", r.name)),
            (a, b) => problems.push(format!(
                "{}: {}[{}] or {}[{}] does not exist ({a:?}, {b:?})",
                r.name, r.from.0, r.from.1, r.to.0, r.to.1
            )),
        }
        if !r.to.0.starts_with("dim_") {
            problems.push(format!(
                "{}: relationships run from a fact or mart to a dimension",
                r.name
            ));
        }
        if r.active {
            if let Some(prev) =
                active_pairs.insert((r.from.0.clone(), r.to.0.clone()), r.name.clone())
            {
                problems.push(format!(
                    "{} and {prev}: two active relationships between the same tables",
                    r.name
                ));
            }
        }
        let modes = (model.mode(&r.from.0), model.mode(&r.to.0));
        if let (Some(a), Some(b)) = modes {
            if (a == "directQuery" && b == "import") || (a == "import" && b == "directQuery") {
                problems.push(format!(
                    "{}: {a} ↔ {b} would be a limited relationship; make the dimension dual",
                    r.name
                ));
            }
        }
    }
    let in_model: BTreeSet<_> = model
        .rels
        .iter()
        .map(|r| {
            (
                r.from.0.clone(),
                r.from.1.clone(),
                r.to.0.clone(),
                r.to.1.clone(),
                r.active,
            )
        })
        .collect();
    let documented = readme_relationships();
    for missing in documented.difference(&in_model) {
        problems.push(format!(
            "README § 3 lists {missing:?}, relationships.tmdl does not"
        ));
    }
    for extra in in_model.difference(&documented) {
        problems.push(format!(
            "relationships.tmdl has {extra:?}, README § 3 does not list it"
        ));
    }
    assert_none(problems, "relationships");
}

/// Problems with the references of a DAX expression in `model`.
fn check_dax(model: &Model, what: &str, dax: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let refs = match dax_refs(dax) {
        Ok(r) => r,
        Err(e) => return vec![format!("{what}: {e}")],
    };
    for (t, c) in &refs.columns {
        match model.tables.get(t) {
            None => problems.push(format!("{what}: table {t} (in {t}[{c}]) does not exist")),
            Some(table) => {
                let is_measure = model.measures.iter().any(|m| &m.table == t && &m.name == c);
                if !table.columns.contains_key(c) && !is_measure {
                    problems.push(format!(
                        "{what}: {t}[{c}] is neither a column nor a measure of {t}"
                    ));
                }
            }
        }
    }
    for b in &refs.bare {
        if model.measure(b).is_none() && !refs.strings.contains(b) {
            problems.push(format!("{what}: [{b}] is not a measure"));
        }
    }
    for t in &refs.tables {
        if !model.tables.contains_key(t) {
            problems.push(format!("{what}: table '{t}' does not exist"));
        }
    }
    for x in &refs.idents {
        let keyword = DAX_KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(x));
        if !keyword && !refs.vars.contains(x) && !model.tables.contains_key(x) {
            problems.push(format!(
                "{what}: `{x}` is neither a table, a variable nor a keyword"
            ));
        }
    }
    for f in &refs.functions {
        if !DAX_FUNCTIONS.contains(&f.as_str()) {
            problems.push(format!("{what}: unknown DAX function {f}"));
        }
    }
    problems
}

/// The tables a measure reads, through the measures it references.
fn tables_read(model: &Model, name: &str, seen: &mut BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if !seen.insert(name.to_string()) {
        return out;
    }
    let Some(m) = model.measure(name) else {
        return out;
    };
    let Ok(refs) = dax_refs(&m.dax) else {
        return out;
    };
    out.extend(refs.columns.iter().map(|(t, _)| t.clone()));
    out.extend(refs.tables.iter().cloned());
    out.extend(
        refs.idents
            .iter()
            .filter(|x| model.tables.contains_key(*x))
            .cloned(),
    );
    for b in &refs.bare {
        out.extend(tables_read(model, b, seen));
    }
    out
}

#[test]
fn measures_reference_existing_columns_and_measures() {
    let model = load_model();
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for m in &model.measures {
        let what = format!("measure [{}] ({})", m.name, m.table);
        if !names.insert(m.name.clone()) {
            problems.push(format!("{what}: the name is used twice"));
        }
        if m.dax.trim().is_empty() {
            problems.push(format!("{what}: no DAX expression"));
        }
        if m.description.as_deref().is_none_or(|d| d.len() < 20) {
            problems.push(format!("{what}: needs a description (///)"));
        }
        if m.format.is_none() && !TEXT_MEASURES.contains(&m.name.as_str()) {
            problems.push(format!("{what}: needs a formatString"));
        }
        if m.format.as_deref().is_some_and(|f| f.contains('%'))
            && !m.name.contains('%')
            && !m.name.to_lowercase().contains("share")
        {
            problems.push(format!(
                "{what}: formatted as a percentage but not named as one"
            ));
        }
        problems.extend(check_dax(&model, &what, &m.dax));
        if !tables_read(&model, &m.name, &mut BTreeSet::new()).contains(&m.table) {
            problems.push(format!("{what}: does not read its home table {}", m.table));
        }
    }
    assert!(
        model.measures.len() >= 60,
        "only {} measures",
        model.measures.len()
    );
    assert_none(problems, "measure references");
}

/// docs/kpis.md sections that define KPIs: number → Gold tables (without `gold_`) named in the heading or in the
/// section's `Tables:` list.
fn kpi_sections() -> BTreeMap<String, BTreeSet<String>> {
    let doc = read(&root().join("docs/kpis.md"));
    let mut out = BTreeMap::new();
    let gold_names = |s: &str| -> BTreeSet<String> {
        s.split('`')
            .skip(1)
            .step_by(2)
            .filter_map(|x| x.strip_prefix("gold_"))
            .filter(|x| x.starts_with("kpi_") || x.starts_with("fact_"))
            .map(str::to_string)
            .collect()
    };
    let mut current: Option<(String, BTreeSet<String>)> = None;
    let mut in_tables_list = false;
    for line in doc.lines() {
        if line.starts_with("## ") || line.starts_with("### ") {
            if let Some((n, t)) = current.take() {
                if !t.is_empty() {
                    out.insert(n, t);
                }
            }
            let heading = line.trim_start_matches('#').trim();
            let number = heading
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches('.')
                .to_string();
            current = Some((number, gold_names(heading)));
            in_tables_list = false;
        } else if let Some((_, tables)) = current.as_mut() {
            if line.trim() == "Tables:" {
                in_tables_list = true;
            } else if in_tables_list && line.starts_with("- ") {
                tables.extend(gold_names(line.split('—').next().unwrap_or(line)));
            } else if in_tables_list && !line.starts_with("  ") {
                in_tables_list = false;
            }
        }
    }
    if let Some((n, t)) = current {
        if !t.is_empty() {
            out.insert(n, t);
        }
    }
    out
}

#[test]
fn every_kpi_of_kpis_md_has_measures_reading_its_gold_table() {
    let model = load_model();
    let sections = kpi_sections();
    let mut problems = Vec::new();
    for expected in ["1.1", "1.2", "1.3", "2", "3", "4", "5", "6"] {
        if !sections.contains_key(expected) {
            problems.push(format!(
                "docs/kpis.md: no KPI section {expected} naming its Gold table was found"
            ));
        }
    }
    let mapped: BTreeSet<&str> = KPI_MEASURES.iter().map(|(s, _, _)| *s).collect();
    for (number, tables) in &sections {
        if !mapped.contains(number.as_str()) {
            problems.push(format!(
                "docs/kpis.md § {number} ({tables:?}) has no measures in KPI_MEASURES"
            ));
        }
    }
    for (number, others, measures) in KPI_MEASURES {
        let Some(doc_tables) = sections.get(*number) else {
            problems.push(format!(
                "KPI_MEASURES maps § {number}, which docs/kpis.md does not define"
            ));
            continue;
        };
        let wanted: BTreeSet<&String> = doc_tables
            .iter()
            .filter(|t| !KPI_TABLES_LEFT_OUT.iter().any(|(l, _)| l == t))
            .collect();
        let mut read_all = BTreeSet::new();
        for name in *measures {
            if model.measure(name).is_none() {
                problems.push(format!("§ {number}: measure [{name}] does not exist"));
                continue;
            }
            let read = tables_read(&model, name, &mut BTreeSet::new());
            if !read
                .iter()
                .any(|t| wanted.contains(t) || others.contains(&t.as_str()))
            {
                problems.push(format!(
                    "§ {number}: [{name}] reads {read:?}, none of the section's {wanted:?} or {others:?}"
                ));
            }
            read_all.extend(read);
        }
        for t in wanted {
            if !model.tables.contains_key(t) {
                problems.push(format!("§ {number}: Gold table {t} is not in the model"));
            } else if !read_all.contains(t) {
                problems.push(format!("§ {number}: no mapped measure reads {t}"));
            }
        }
    }
    for (left_out, why) in KPI_TABLES_LEFT_OUT {
        if model.tables.contains_key(*left_out) {
            problems.push(format!(
                "{left_out} is in the model but should be left out: {why}"
            ));
        }
    }
    assert_none(problems, "KPI coverage");
}

/// The `scope_level` values Synapse's `sec.visible` knows.
fn synapse_scope_levels() -> BTreeSet<String> {
    let sql = read(&root().join("synapse/02_row_level_security.sql"));
    let mut out = BTreeSet::new();
    for part in sql.split("scope_level = '").skip(1) {
        if let Some(v) = part.split('\'').next() {
            out.insert(v.to_string());
        }
    }
    out
}

#[test]
fn roles_scope_every_table_the_entitlements_scope() {
    let model = load_model();
    let levels = synapse_scope_levels();
    assert!(
        ["network", "hospital", "department"]
            .iter()
            .all(|l| levels.contains(*l)),
        "synapse/02_row_level_security.sql scope levels: {levels:?}"
    );
    let mut problems = Vec::new();
    let expected: BTreeSet<&str> = [
        "department_staff",
        "hospital_manager",
        "analyst",
        "pipeline_operator",
    ]
    .into();
    let names: BTreeSet<&str> = model.roles.keys().map(String::as_str).collect();
    if names != expected {
        problems.push(format!("roles {names:?}, expected {expected:?}"));
    }
    let scoped: Vec<&String> = model
        .tables
        .iter()
        .filter(|(_, t)| t.columns.contains_key("hospital_id"))
        .map(|(n, _)| n)
        .collect();
    let is_false = |f: &str| f.split_whitespace().collect::<String>() == "FALSE()";
    let scope_of = |f: &str| -> BTreeSet<String> {
        f.split("user_access[scope_level]")
            .skip(1)
            .filter_map(|p| {
                p.trim_start()
                    .strip_prefix('=')?
                    .trim_start()
                    .strip_prefix('"')?
                    .split('"')
                    .next()
            })
            .map(str::to_string)
            .collect()
    };
    for (rname, role) in &model.roles {
        if role.permission.as_deref() != Some("read") {
            problems.push(format!("{rname}: modelPermission must be read"));
        }
        for (t, f) in &role.filters {
            let what = format!("role {rname}, table {t}");
            if !model.tables.contains_key(t) {
                problems.push(format!("{what}: no such table"));
                continue;
            }
            if f.trim().is_empty() {
                problems.push(format!("{what}: empty filter"));
            }
            problems.extend(check_dax(&model, &what, f));
            if let Ok(refs) = dax_refs(f) {
                if !refs.bare.is_empty() {
                    problems.push(format!(
                        "{what}: filters reference columns as Table[Column], not {:?}",
                        refs.bare
                    ));
                }
                if refs
                    .columns
                    .iter()
                    .any(|(ct, c)| ct == "user_access" && c == "upn")
                    && !refs.functions.contains("USERPRINCIPALNAME")
                {
                    problems.push(format!(
                        "{what}: compares user_access[upn] without USERPRINCIPALNAME()"
                    ));
                }
                let uses_access = refs.columns.iter().any(|(ct, _)| ct == "user_access");
                if uses_access
                    && !refs
                        .columns
                        .iter()
                        .any(|(ct, c)| ct == "user_access" && c == "upn")
                {
                    problems.push(format!(
                        "{what}: reads user_access without matching the user's upn"
                    ));
                }
            }
            for level in scope_of(f) {
                if !levels.contains(&level) {
                    problems.push(format!(
                        "{what}: scope_level \"{level}\" is not one of Synapse's {levels:?}"
                    ));
                }
            }
        }
        let filter = |t: &str| role.filters.get(t).map(String::as_str);
        for t in &scoped {
            let t = t.as_str();
            let f = filter(t);
            let own = "user_access[upn] = USERPRINCIPALNAME()";
            if t == "user_access" {
                if f.map(str::trim) != Some(own) {
                    problems.push(format!(
                        "{rname}: user_access must be filtered to `{own}`, is {f:?}"
                    ));
                }
                continue;
            }
            let reads = |col: &str| f.is_some_and(|f| f.contains(&format!("{t}[{col}]")));
            match rname.as_str() {
                "department_staff" => {
                    let dept_cols = model.tables[t]
                        .columns
                        .keys()
                        .filter(|c| c == &"department_code" || c.ends_with("_department"))
                        .count();
                    if HOSPITAL_LEVEL.contains(&t) || (dept_cols == 0 && t != "dim_hospital") {
                        if !f.is_some_and(is_false) {
                            problems.push(format!(
                                "{rname}: {t} has no department rows: must be FALSE(), is {f:?}"
                            ));
                        }
                    } else if !(reads("hospital_id")
                        && f.is_some_and(|f| {
                            scope_of(f) == BTreeSet::from(["department".to_string()])
                        }))
                    {
                        problems.push(format!("{rname}: {t} must be scoped on hospital_id (+ department) by a department scope"));
                    } else if t != "dim_hospital"
                        && !(reads("department_code")
                            || reads("first_department")
                            || reads("admit_department"))
                    {
                        problems.push(format!("{rname}: {t} is not filtered on its department"));
                    }
                }
                "hospital_manager"
                    if !(reads("hospital_id")
                        && f.is_some_and(|f| {
                            scope_of(f) == BTreeSet::from(["hospital".to_string()])
                        })) =>
                {
                    problems.push(format!(
                        "{rname}: {t} must be scoped on hospital_id by a hospital scope, is {f:?}"
                    ));
                }
                "analyst" => {
                    if PATIENT_LEVEL.contains(&t) {
                        if !f.is_some_and(is_false) {
                            problems.push(format!(
                                "{rname}: patient-level {t} must be FALSE(), is {f:?}"
                            ));
                        }
                    } else if f
                        .is_none_or(|f| scope_of(f) != BTreeSet::from(["network".to_string()]))
                    {
                        problems.push(format!(
                            "{rname}: {t} must require a network scope, is {f:?}"
                        ));
                    }
                }
                "pipeline_operator" if PATIENT_LEVEL.contains(&t) && !f.is_some_and(is_false) => {
                    problems.push(format!(
                        "{rname}: patient-level {t} must be FALSE(), is {f:?}"
                    ));
                }
                _ => {}
            }
        }
    }
    let access = &model.tables["user_access"];
    if !access.hidden {
        problems.push("user_access must be hidden".into());
    }
    if model
        .rels
        .iter()
        .any(|r| r.from.0 == "user_access" || r.to.0 == "user_access")
    {
        problems.push(
            "user_access must stay disconnected (no relationship propagates entitlements)".into(),
        );
    }
    if model.mode("user_access") == Some("import") {
        problems.push("user_access filters DirectQuery tables: it must be dual, not import".into());
    }
    assert_none(problems, "row-level security");
}

/// Every `field` projection of a visual: (Column|Measure, table, property).
fn visual_fields(v: &Value, out: &mut Vec<(String, String, String)>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(f)) = map.get("field") {
                for (kind, body) in f {
                    let table = body["Expression"]["SourceRef"]["Entity"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    let prop = body["Property"].as_str().unwrap_or("").to_string();
                    out.push((kind.clone(), table, prop));
                }
            }
            for x in map.values() {
                visual_fields(x, out);
            }
        }
        Value::Array(xs) => xs.iter().for_each(|x| visual_fields(x, out)),
        _ => {}
    }
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn project_files_are_valid_json_with_the_expected_keys() {
    let mut problems = Vec::new();
    let pbip = json(&powerbi().join(format!("{PROJECT}.pbip")));
    if pbip["version"].as_str().is_none() {
        problems.push(".pbip: no version".into());
    }
    let report_dir = match pbip["artifacts"][0]["report"]["path"].as_str() {
        Some(p) => powerbi().join(p),
        None => {
            problems.push(".pbip: artifacts[0].report.path missing".into());
            powerbi().join(format!("{PROJECT}.Report"))
        }
    };
    let pbir = json(&report_dir.join("definition.pbir"));
    if pbir["version"].as_str().is_none() {
        problems.push("definition.pbir: no version".into());
    }
    match pbir["datasetReference"]["byPath"]["path"].as_str() {
        Some(p) if report_dir.join(p).join("definition.pbism").is_file() => {}
        other => problems.push(format!(
            "definition.pbir: datasetReference.byPath.path {other:?} is not the semantic model"
        )),
    }
    let pbism = json(&semantic_model().join("definition.pbism"));
    let major: Option<u32> = pbism["version"]
        .as_str()
        .and_then(|v| v.split('.').next()?.parse().ok());
    if major.is_none_or(|m| m < 4) {
        problems.push(format!(
            "definition.pbism: version {:?} (TMDL folders need 4.0 or later)",
            pbism["version"]
        ));
    }
    if !pbism["settings"].is_object() {
        problems.push("definition.pbism: settings must be an object".into());
    }
    for (dir, kind) in [
        (semantic_model(), "SemanticModel"),
        (report_dir.clone(), "Report"),
    ] {
        let platform = json(&dir.join(".platform"));
        if platform["metadata"]["type"].as_str() != Some(kind) {
            problems.push(format!(
                "{}/.platform: metadata.type is not {kind}",
                dir.display()
            ));
        }
        if !platform["config"]["logicalId"]
            .as_str()
            .is_some_and(is_guid)
        {
            problems.push(format!(
                "{}/.platform: config.logicalId is not a GUID",
                dir.display()
            ));
        }
    }
    let defn = report_dir.join("definition");
    if json(&defn.join("version.json"))["version"]
        .as_str()
        .is_none()
    {
        problems.push("report version.json: no version".into());
    }
    if json(&defn.join("report.json"))["themeCollection"]["baseTheme"]["name"]
        .as_str()
        .is_none()
    {
        problems.push("report.json: themeCollection.baseTheme.name missing".into());
    }
    let pages = json(&defn.join("pages/pages.json"));
    let order: Vec<String> = pages["pageOrder"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let on_disk: BTreeSet<String> = fs::read_dir(defn.join("pages"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    if order.iter().cloned().collect::<BTreeSet<_>>() != on_disk {
        problems.push(format!(
            "pages.json pageOrder {order:?} differs from the page folders {on_disk:?}"
        ));
    }
    if !pages["activePageName"]
        .as_str()
        .is_some_and(|a| order.iter().any(|p| p == a))
    {
        problems.push("pages.json: activePageName is not a page".into());
    }
    let model = load_model();
    let mut titles = BTreeSet::new();
    for page in &order {
        let pdir = defn.join("pages").join(page);
        let p = json(&pdir.join("page.json"));
        if p["name"].as_str() != Some(page.as_str()) {
            problems.push(format!("page {page}: name differs from its folder"));
        }
        titles.insert(p["displayName"].as_str().unwrap_or("").to_string());
        if !(p["width"].is_number() && p["height"].is_number()) {
            problems.push(format!("page {page}: width and height"));
        }
        let vdir = pdir.join("visuals");
        let visuals: Vec<PathBuf> = fs::read_dir(&vdir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        if visuals.is_empty() {
            problems.push(format!("page {page} has no visuals"));
        }
        for v in visuals {
            let vname = v.file_name().unwrap().to_string_lossy().to_string();
            let visual = json(&v.join("visual.json"));
            if visual["name"].as_str() != Some(vname.as_str()) {
                problems.push(format!("visual {vname}: name differs from its folder"));
            }
            if visual["visual"]["visualType"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                problems.push(format!("visual {vname}: no visualType"));
            }
            for key in ["x", "y", "width", "height"] {
                if !visual["position"][key].is_number() {
                    problems.push(format!("visual {vname}: position.{key}"));
                }
            }
            let mut fields = Vec::new();
            visual_fields(&visual, &mut fields);
            if fields.is_empty() {
                problems.push(format!("visual {vname} shows no field"));
            }
            for (kind, table, prop) in fields {
                let ok = match kind.as_str() {
                    "Column" => model
                        .tables
                        .get(&table)
                        .is_some_and(|t| t.columns.contains_key(&prop)),
                    "Measure" => model.measure(&prop).is_some_and(|m| m.table == table),
                    _ => false,
                };
                if !ok {
                    problems.push(format!(
                        "page {page}, visual {vname}: {kind} {table}.{prop} is not in the model"
                    ));
                }
            }
        }
    }
    let wanted: BTreeSet<String> = [
        "Network overview",
        "Hospital view",
        "Length of stay",
        "Waits and bottlenecks",
        "Data freshness",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if titles != wanted {
        problems.push(format!("report pages {titles:?}, expected {wanted:?}"));
    }
    assert_none(problems, "PBIP project files");
}

/// Every activity of a pipeline, nested ones (If, Until, ForEach) included.
fn activities(v: &Value, out: &mut Vec<Value>) {
    if let Some(list) = v.as_array() {
        for a in list {
            out.push(a.clone());
            let tp = &a["typeProperties"];
            for key in ["activities", "ifTrueActivities", "ifFalseActivities"] {
                activities(&tp[key], out);
            }
        }
    }
}

#[test]
fn the_dataset_refresh_follows_each_gold_refresh() {
    let mut problems = Vec::new();
    let adf = root().join("adf");
    let refresh = json(&adf.join("pipeline/PowerBIDatasetRefresh.json"));
    if refresh["name"] != "PowerBIDatasetRefresh" {
        problems.push("adf/pipeline/PowerBIDatasetRefresh.json: name".into());
    }
    let mut acts = Vec::new();
    activities(&refresh["properties"]["activities"], &mut acts);
    let url_of = |a: &Value| -> String {
        a["typeProperties"]["url"]["value"]
            .as_str()
            .or(a["typeProperties"]["url"].as_str())
            .unwrap_or("")
            .to_string()
    };
    // The failure path's alert (POST to the alertWebhookUrl global parameter) is not a Power BI call.
    let web: Vec<&Value> = acts
        .iter()
        .filter(|a| {
            a["type"] == "WebActivity" && !url_of(a).contains("globalParameters.alertWebhookUrl")
        })
        .collect();
    let post = web.iter().find(|a| a["typeProperties"]["method"] == "POST");
    match post {
        None => problems.push("PowerBIDatasetRefresh: no Web activity POSTs the refresh".into()),
        Some(a) => {
            let url = url_of(a);
            for part in [
                "https://api.powerbi.com/v1.0/myorg/groups/",
                "pipeline().globalParameters.powerBiWorkspaceId",
                "/datasets/",
                "pipeline().globalParameters.powerBiDatasetId",
                "/refreshes",
            ] {
                if !url.contains(part) {
                    problems.push(format!("PowerBIDatasetRefresh POST url {url} lacks {part}"));
                }
            }
        }
    }
    for a in &web {
        let auth = &a["typeProperties"]["authentication"];
        if auth["type"] != "MSI" || auth["resource"] != "https://analysis.windows.net/powerbi/api" {
            problems.push(format!(
                "{}: must authenticate with ADF's managed identity for the Power BI API",
                a["name"]
            ));
        }
    }
    let polls = acts.iter().any(|a| {
        a["type"] == "Until"
            && a["typeProperties"]["activities"]
                .as_array()
                .is_some_and(|inner| {
                    inner.iter().any(|x| {
                        x["type"] == "WebActivity"
                            && x["typeProperties"]["method"] == "GET"
                            && url_of(x).contains("/refreshes")
                    })
                })
    });
    if !polls {
        problems.push("PowerBIDatasetRefresh: no Until loop GETs the refresh status".into());
    }
    if !acts.iter().any(|a| a["type"] == "Fail") {
        problems.push(
            "PowerBIDatasetRefresh: a failed refresh must fail the run (Fail activity)".into(),
        );
    }
    let gold = json(&adf.join("pipeline/GoldRefresh.json"));
    let top = gold["properties"]["activities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let chained = top.iter().any(|a| {
        let mut inner = Vec::new();
        activities(&Value::Array(vec![a.clone()]), &mut inner);
        let calls = inner.iter().any(|x| {
            x["type"] == "ExecutePipeline"
                && x["typeProperties"]["pipeline"]["referenceName"] == "PowerBIDatasetRefresh"
        });
        let after_gold = a["dependsOn"].as_array().is_some_and(|d| {
            d.iter().any(|dep| {
                dep["activity"] == "RefreshGold" && dep["dependencyConditions"][0] == "Succeeded"
            })
        });
        calls && after_gold
    });
    if !chained {
        problems
            .push("GoldRefresh: PowerBIDatasetRefresh must run after RefreshGold succeeded".into());
    }
    let factory = fs::read_dir(adf.join("factory"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| json(&e.path()))
        .next()
        .expect("adf/factory/*.json");
    let bicep = read(&root().join("bicep/modules/datafactory.bicep"));
    for p in ["powerBiWorkspaceId", "powerBiDatasetId"] {
        if factory["properties"]["globalParameters"][p]["type"] != "String" {
            problems.push(format!("adf/factory: global parameter {p} is not declared"));
        }
        if !bicep.contains(&format!("{p}: {{")) {
            problems.push(format!(
                "bicep/modules/datafactory.bicep: global parameter {p} is not deployed"
            ));
        }
    }
    let readme = read(&powerbi().join("README.md"));
    for needle in [
        "PowerBIDatasetRefresh",
        "POST https://api.powerbi.com/v1.0/myorg/groups/{groupId}/datasets/{datasetId}/refreshes",
    ] {
        if !readme.contains(needle) {
            problems.push(format!("powerbi/README.md does not document {needle}"));
        }
    }
    assert_none(problems, "dataset refresh after Gold");
}
