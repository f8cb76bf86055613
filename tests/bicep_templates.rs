//! The infrastructure templates, checked structurally without `az bicep` (not installable here):
//! - every `.bicep` file under `bicep/` goes through a Bicep tokenizer and parser written below (comments,
//!   `'...'` strings with `${}` interpolation, `'''` multi-line strings, decorators, `targetScope`, `extension`,
//!   `param`, `var`, `resource` (also `existing`), `module`, `output`, `for` loops, `if` conditions, lambdas);
//! - delimiters are balanced; every declaration is well formed; every `resource` type carries `@apiVersion`;
//!   every identifier an expression uses is declared in its file (params, vars, resources, modules, loop and
//!   lambda variables, extension aliases) or is a Bicep built-in function/namespace listed in [`BUILTINS`];
//!   multi-line strings hold no `${` (Bicep does not interpolate them); every param and var is used;
//! - every `module` path exists, the params it passes are declared by the target (and every target param
//!   without a default is passed), and every `<module>.outputs.<name>` is an output of the target;
//! - every `extension` is declared in `bicep/bicepconfig.json`;
//! - `bicep/main.parameters.json` names only params of `main.bicep` and gives every required one;
//! - ADF (`adf/`): every activity's `dependsOn` names an activity of the same activity list; every pipeline has a
//!   failure path (a Web activity POSTing a common-alert-schema body to `alertWebhookUrl` on `Failed`, then a
//!   `Fail` activity); every `pipeline().globalParameters.X` exists in the factory JSON, whose global parameters
//!   are the ones `bicep/modules/datafactory.bicep` deploys; every ExecutePipeline target exists.
//!
//! Each check has a unit test below that feeds it a broken snippet and asserts the error.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

// ------------------------------------------------------------------------------------------------------------
// Tokenizer
// ------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(String),
    /// A `'...'` string: its literal parts and the tokens of each `${...}` between them.
    Str {
        parts: Vec<String>,
        interps: Vec<Vec<Token>>,
    },
    /// A `'''...'''` string (no escapes, no interpolation).
    Multi(String),
    Sym(&'static str),
    Newline,
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    tok: Tok,
    line: usize,
}

const SYMBOLS: [&str; 32] = [
    "=>", "==", "!=", "=~", "!~", "<=", ">=", "&&", "||", "??", ".?", "::", "(", ")", "[", "]",
    "{", "}", ",", ":", "=", ".", "?", "!", "@", "+", "-", "*", "/", "%", "<", ">",
];

struct Lexer<'a> {
    src: &'a [char],
    i: usize,
    line: usize,
}

impl Lexer<'_> {
    fn peek_is(&self, s: &str) -> bool {
        let n = s.chars().count();
        self.i + n <= self.src.len() && self.src[self.i..self.i + n].iter().copied().eq(s.chars())
    }

    /// Tokens up to the end of input, or (inside `${`) up to the `}` that closes the interpolation.
    fn tokens(&mut self, in_interp: bool) -> Result<Vec<Token>, String> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        let start_line = self.line;
        while self.i < self.src.len() {
            let c = self.src[self.i];
            if c == '\n' {
                if in_interp {
                    return Err(format!(
                        "line {}: newline inside the ${{}} opened on line {start_line}",
                        self.line
                    ));
                }
                out.push(Token {
                    tok: Tok::Newline,
                    line: self.line,
                });
                self.line += 1;
                self.i += 1;
            } else if c.is_whitespace() {
                self.i += 1;
            } else if self.peek_is("//") || self.peek_is("#disable-") {
                // A comment, or a linter pragma (`#disable-next-line BCP081`).
                while self.i < self.src.len() && self.src[self.i] != '\n' {
                    self.i += 1;
                }
            } else if self.peek_is("/*") {
                let from = self.line;
                self.i += 2;
                loop {
                    if self.i >= self.src.len() {
                        return Err(format!("line {from}: unterminated /* comment"));
                    }
                    if self.peek_is("*/") {
                        self.i += 2;
                        break;
                    }
                    if self.src[self.i] == '\n' {
                        self.line += 1;
                    }
                    self.i += 1;
                }
            } else if self.peek_is("'''") {
                let from = self.line;
                self.i += 3;
                let mut text = String::new();
                loop {
                    if self.i >= self.src.len() {
                        return Err(format!("line {from}: unterminated ''' string"));
                    }
                    if self.peek_is("'''") {
                        self.i += 3;
                        break;
                    }
                    if self.src[self.i] == '\n' {
                        self.line += 1;
                    }
                    text.push(self.src[self.i]);
                    self.i += 1;
                }
                out.push(Token {
                    tok: Tok::Multi(text),
                    line: from,
                });
            } else if c == '\'' {
                let line = self.line;
                let tok = self.string()?;
                out.push(Token { tok, line });
            } else if c.is_ascii_alphabetic() || c == '_' {
                let mut s = String::new();
                while self.i < self.src.len()
                    && (self.src[self.i].is_ascii_alphanumeric() || self.src[self.i] == '_')
                {
                    s.push(self.src[self.i]);
                    self.i += 1;
                }
                out.push(Token {
                    tok: Tok::Ident(s),
                    line: self.line,
                });
            } else if c.is_ascii_digit() {
                let mut s = String::new();
                while self.i < self.src.len() && self.src[self.i].is_ascii_digit() {
                    s.push(self.src[self.i]);
                    self.i += 1;
                }
                out.push(Token {
                    tok: Tok::Num(s),
                    line: self.line,
                });
            } else if let Some(sym) = SYMBOLS.iter().find(|s| self.peek_is(s)) {
                self.i += sym.len();
                match *sym {
                    "{" => depth += 1,
                    "}" if in_interp && depth == 0 => return Ok(out),
                    "}" => depth = depth.saturating_sub(1),
                    _ => {}
                }
                out.push(Token {
                    tok: Tok::Sym(sym),
                    line: self.line,
                });
            } else {
                return Err(format!("line {}: unexpected character {c:?}", self.line));
            }
        }
        if in_interp {
            return Err(format!("line {start_line}: unterminated ${{}}"));
        }
        Ok(out)
    }

    /// A `'...'` string; `self.i` is on the opening quote.
    fn string(&mut self) -> Result<Tok, String> {
        let from = self.line;
        self.i += 1;
        let mut parts = vec![String::new()];
        let mut interps = Vec::new();
        loop {
            let Some(&c) = self.src.get(self.i) else {
                return Err(format!("line {from}: unterminated string"));
            };
            match c {
                '\n' => return Err(format!("line {from}: unterminated string")),
                '\'' => {
                    self.i += 1;
                    return Ok(Tok::Str { parts, interps });
                }
                '\\' => {
                    let e = self.src.get(self.i + 1).copied();
                    let text = match e {
                        Some('\'') => "'",
                        Some('\\') => "\\",
                        Some('n') => "\n",
                        Some('r') => "\r",
                        Some('t') => "\t",
                        Some('$') => "$",
                        Some('u') => "\u{fffd}",
                        _ => return Err(format!("line {from}: bad escape \\{}", e.unwrap_or(' '))),
                    };
                    self.i += 2;
                    if e == Some('u') {
                        // \u{XXXX}
                        while self.i < self.src.len() && self.src[self.i] != '}' {
                            self.i += 1;
                        }
                        self.i += 1;
                    }
                    parts.last_mut().expect("a part").push_str(text);
                }
                '$' if self.src.get(self.i + 1) == Some(&'{') => {
                    self.i += 2;
                    let inner = self.tokens(true)?;
                    if inner.is_empty() {
                        return Err(format!("line {from}: empty ${{}} in a string"));
                    }
                    interps.push(inner);
                    parts.push(String::new());
                }
                _ => {
                    parts.last_mut().expect("a part").push(c);
                    self.i += 1;
                }
            }
        }
    }
}

fn lex(src: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().collect();
    Lexer {
        src: &chars,
        i: 0,
        line: 1,
    }
    .tokens(false)
}

/// Balanced `()`, `[]`, `{}` (strings and comments excluded; interpolations checked on their own).
fn check_delimiters(tokens: &[Token]) -> Vec<String> {
    fn walk(tokens: &[Token], errors: &mut Vec<String>) {
        let mut stack: Vec<(&str, usize)> = Vec::new();
        for t in tokens {
            match &t.tok {
                Tok::Sym(s @ ("(" | "[" | "{")) => stack.push((s, t.line)),
                Tok::Sym(s @ (")" | "]" | "}")) => {
                    let want = match *s {
                        ")" => "(",
                        "]" => "[",
                        _ => "{",
                    };
                    match stack.pop() {
                        Some((open, _)) if open == want => {}
                        Some((open, line)) => errors.push(format!(
                            "line {}: '{s}' closes '{open}' opened on line {line}",
                            t.line
                        )),
                        None => errors.push(format!("line {}: '{s}' closes nothing", t.line)),
                    }
                }
                Tok::Str { interps, .. } => {
                    for i in interps {
                        walk(i, errors);
                    }
                }
                _ => {}
            }
        }
        for (open, line) in stack {
            errors.push(format!("line {line}: '{open}' is never closed"));
        }
    }
    let mut errors = Vec::new();
    walk(tokens, &mut errors);
    errors
}

// ------------------------------------------------------------------------------------------------------------
// Parser
// ------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Ident(String, usize),
    Lit,
    Str(Vec<Expr>),
    Multi(String, usize),
    Call {
        name: String,
        line: usize,
        args: Vec<Expr>,
    },
    /// `target.name`, `target.?name`.
    Member(Box<Expr>, String, usize),
    /// `target.name(args)` (a namespaced function or a resource function such as `listKeys()`).
    MemberCall(Box<Expr>, String, Vec<Expr>, usize),
    Index(Box<Expr>, Box<Expr>),
    Array(Vec<Expr>),
    /// Keys (with their interpolations) and values.
    Object(Vec<(String, Expr, Expr)>),
    For {
        vars: Vec<String>,
        iter: Box<Expr>,
        body: Box<Expr>,
    },
    If(Box<Expr>, Box<Expr>),
    Lambda(Vec<String>, Box<Expr>),
    Op(Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TargetScope,
    Extension,
    Param,
    Var,
    Resource,
    Module,
    Output,
}

#[derive(Debug, Clone)]
struct Decl {
    kind: Kind,
    name: String,
    line: usize,
    decorators: Vec<Expr>,
    /// Param/output type, resource type, module path.
    spec: String,
    /// Params: a default is given.
    has_default: bool,
    existing: bool,
    value: Option<Expr>,
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    /// Newlines are insignificant while the top is true (inside parentheses).
    skip_nl: Vec<bool>,
}

const PARAM_TYPES: [&str; 5] = ["string", "int", "bool", "object", "array"];

impl Parser {
    fn new(toks: Vec<Token>) -> Self {
        Parser {
            toks,
            i: 0,
            skip_nl: vec![false],
        }
    }

    fn skipping(&self) -> bool {
        *self.skip_nl.last().unwrap_or(&false)
    }

    fn settle(&mut self) {
        if self.skipping() {
            while matches!(
                self.toks.get(self.i),
                Some(Token {
                    tok: Tok::Newline,
                    ..
                })
            ) {
                self.i += 1;
            }
        }
    }

    fn peek(&mut self) -> Option<&Tok> {
        self.settle();
        self.toks.get(self.i).map(|t| &t.tok)
    }

    fn line(&self) -> usize {
        self.toks
            .get(self.i)
            .or(self.toks.last())
            .map_or(0, |t| t.line)
    }

    fn next(&mut self) -> Option<Token> {
        self.settle();
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        t
    }

    fn is_sym(&mut self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Sym(x)) if *x == s)
    }

    fn is_ident(&mut self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(x)) if x == s)
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.is_sym(s) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, s: &str, what: &str) -> Result<(), String> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(format!(
                "line {}: expected '{s}' {what}, found {}",
                self.line(),
                self.describe()
            ))
        }
    }

    fn describe(&mut self) -> String {
        match self.peek() {
            None => "end of file".into(),
            Some(Tok::Newline) => "end of line".into(),
            Some(Tok::Ident(s)) => format!("'{s}'"),
            Some(Tok::Sym(s)) => format!("'{s}'"),
            Some(Tok::Num(n)) => n.clone(),
            Some(Tok::Str { .. }) | Some(Tok::Multi(_)) => "a string".into(),
        }
    }

    fn ident(&mut self, what: &str) -> Result<String, String> {
        match self.peek().cloned() {
            Some(Tok::Ident(s)) => {
                self.i += 1;
                Ok(s)
            }
            _ => Err(format!(
                "line {}: expected {what}, found {}",
                self.line(),
                self.describe()
            )),
        }
    }

    /// A plain string (no interpolation): resource types, module paths.
    fn plain_string(&mut self, what: &str) -> Result<String, String> {
        match self.peek().cloned() {
            Some(Tok::Str { parts, interps }) if interps.is_empty() => {
                self.i += 1;
                Ok(parts.concat())
            }
            _ => Err(format!(
                "line {}: expected {what} (a string without interpolation), found {}",
                self.line(),
                self.describe()
            )),
        }
    }

    fn end_of_statement(&mut self) -> Result<(), String> {
        match self.toks.get(self.i).map(|t| &t.tok) {
            None | Some(Tok::Newline) => Ok(()),
            _ => Err(format!(
                "line {}: unexpected {} after the declaration",
                self.line(),
                self.describe()
            )),
        }
    }

    fn file(&mut self) -> Result<Vec<Decl>, String> {
        let mut decls = Vec::new();
        let mut decorators = Vec::new();
        loop {
            while matches!(
                self.toks.get(self.i),
                Some(Token {
                    tok: Tok::Newline,
                    ..
                })
            ) {
                self.i += 1;
            }
            let Some(t) = self.toks.get(self.i).cloned() else {
                break;
            };
            if t.tok == Tok::Sym("@") {
                self.i += 1;
                let d = self.postfix()?;
                if !matches!(d, Expr::Call { .. } | Expr::MemberCall(..)) {
                    return Err(format!("line {}: a decorator must be a call", t.line));
                }
                decorators.push(d);
                self.end_of_statement()?;
                continue;
            }
            let Tok::Ident(keyword) = &t.tok else {
                return Err(format!(
                    "line {}: expected a declaration, found {}",
                    t.line,
                    self.describe()
                ));
            };
            self.i += 1;
            let mut d = Decl {
                kind: Kind::Var,
                name: String::new(),
                line: t.line,
                decorators: std::mem::take(&mut decorators),
                spec: String::new(),
                has_default: false,
                existing: false,
                value: None,
            };
            match keyword.as_str() {
                "targetScope" => {
                    d.kind = Kind::TargetScope;
                    d.name = "targetScope".into();
                    self.expect("=", "after targetScope")?;
                    d.value = Some(self.expr()?);
                }
                "extension" => {
                    d.kind = Kind::Extension;
                    d.name = self.ident("an extension name")?;
                    d.spec = d.name.clone();
                    if self.is_ident("with") {
                        self.i += 1;
                        d.value = Some(self.expr()?);
                    }
                    if self.is_ident("as") {
                        self.i += 1;
                        d.name = self.ident("an extension alias")?;
                    }
                }
                "param" => {
                    d.kind = Kind::Param;
                    d.name = self.ident("a parameter name")?;
                    d.spec = self.type_name()?;
                    if self.eat("=") {
                        d.has_default = true;
                        d.value = Some(self.expr()?);
                    }
                }
                "var" => {
                    d.kind = Kind::Var;
                    d.name = self.ident("a variable name")?;
                    self.expect("=", "after the variable name")?;
                    d.value = Some(self.expr()?);
                }
                "output" => {
                    d.kind = Kind::Output;
                    d.name = self.ident("an output name")?;
                    d.spec = self.type_name()?;
                    self.expect("=", "after the output type")?;
                    d.value = Some(self.expr()?);
                }
                "resource" | "module" => {
                    d.kind = if keyword == "resource" {
                        Kind::Resource
                    } else {
                        Kind::Module
                    };
                    d.name = self.ident(&format!("a {keyword} name"))?;
                    d.spec = self.plain_string(if keyword == "resource" {
                        "the resource type"
                    } else {
                        "the module path"
                    })?;
                    if d.kind == Kind::Resource && self.is_ident("existing") {
                        self.i += 1;
                        d.existing = true;
                    }
                    self.expect("=", &format!("after the {keyword} declaration"))?;
                    d.value = Some(self.body()?);
                }
                other => {
                    return Err(format!("line {}: unknown statement '{other}'", t.line));
                }
            }
            self.end_of_statement()?;
            decls.push(d);
        }
        if !decorators.is_empty() {
            return Err("a decorator at the end of the file decorates nothing".into());
        }
        Ok(decls)
    }

    fn type_name(&mut self) -> Result<String, String> {
        let line = self.line();
        let t = self.ident("a type")?;
        if !PARAM_TYPES.contains(&t.as_str()) {
            return Err(format!("line {line}: unknown type '{t}'"));
        }
        let mut t = t;
        if self.is_sym("[") {
            self.i += 1;
            self.expect("]", "in an array type")?;
            t.push_str("[]");
        }
        if self.eat("?") {
            t.push('?');
        }
        Ok(t)
    }

    /// A resource/module body: an object, `if (cond) {...}` or `[for ...]`.
    fn body(&mut self) -> Result<Expr, String> {
        if self.is_ident("if") {
            return self.if_body();
        }
        if self.is_sym("{") || self.is_sym("[") {
            let e = self.primary()?;
            return match e {
                Expr::Object(_) | Expr::For { .. } => Ok(e),
                _ => Err(format!(
                    "line {}: a resource or module body is an object, an if or a for",
                    self.line()
                )),
            };
        }
        Err(format!(
            "line {}: expected a resource or module body, found {}",
            self.line(),
            self.describe()
        ))
    }

    fn if_body(&mut self) -> Result<Expr, String> {
        self.i += 1; // `if`
        self.expect("(", "after if")?;
        self.skip_nl.push(true);
        let cond = self.expr();
        self.skip_nl.pop();
        let cond = cond?;
        self.expect(")", "closing the if condition")?;
        if !self.is_sym("{") {
            return Err(format!(
                "line {}: expected an object after the if condition",
                self.line()
            ));
        }
        let body = self.primary()?;
        Ok(Expr::If(Box::new(cond), Box::new(body)))
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let cond = self.binary(0)?;
        if self.eat("?") {
            let a = self.expr()?;
            self.expect(":", "in a conditional expression")?;
            let b = self.expr()?;
            return Ok(Expr::Op(vec![cond, a, b]));
        }
        Ok(cond)
    }

    fn binary(&mut self, level: usize) -> Result<Expr, String> {
        const LEVELS: [&[&str]; 7] = [
            &["??"],
            &["||"],
            &["&&"],
            &["==", "!=", "=~", "!~"],
            &["<", "<=", ">", ">="],
            &["+", "-"],
            &["*", "/", "%"],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        while LEVELS[level].iter().any(|op| self.is_sym(op)) {
            self.i += 1;
            let right = self.binary(level + 1)?;
            left = Expr::Op(vec![left, right]);
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("!") || self.eat("-") {
            return Ok(Expr::Op(vec![self.unary()?]));
        }
        self.postfix()
    }

    fn args(&mut self) -> Result<Vec<Expr>, String> {
        // `(` already consumed
        self.skip_nl.push(true);
        let mut args = Vec::new();
        let result = (|| {
            if self.eat(")") {
                return Ok(());
            }
            loop {
                args.push(self.expr()?);
                if self.eat(")") {
                    return Ok(());
                }
                self.expect(",", "between arguments")?;
            }
        })();
        self.skip_nl.pop();
        result.map(|_| args)
    }

    fn postfix(&mut self) -> Result<Expr, String> {
        let mut e = self.primary()?;
        loop {
            if self.is_sym(".") || self.is_sym(".?") {
                self.i += 1;
                let line = self.line();
                let name = self.ident("a member name")?;
                if self.eat("(") {
                    let args = self.args()?;
                    e = Expr::MemberCall(Box::new(e), name, args, line);
                } else {
                    e = Expr::Member(Box::new(e), name, line);
                }
            } else if self.is_sym("[") {
                // An index must start on the same line (a `[` on the next line starts a new array item).
                self.i += 1;
                self.eat("?");
                self.skip_nl.push(true);
                let idx = self.expr();
                self.skip_nl.pop();
                let idx = idx?;
                self.expect("]", "closing the index")?;
                e = Expr::Index(Box::new(e), Box::new(idx));
            } else if self.is_sym("!")
                && matches!(
                    self.toks.get(self.i + 1).map(|t| &t.tok),
                    Some(Tok::Sym("."))
                )
            {
                self.i += 1; // non-null assertion
            } else {
                return Ok(e);
            }
        }
    }

    /// `(a, b) =>` ahead?
    fn sig_at(&self, j: &mut usize) -> Option<&Tok> {
        while matches!(self.toks.get(*j).map(|t| &t.tok), Some(Tok::Newline)) {
            *j += 1;
        }
        let t = self.toks.get(*j).map(|t| &t.tok);
        *j += 1;
        t
    }

    fn lambda_ahead(&self) -> bool {
        // `self.i` is just past the `(`.
        let mut j = self.i;
        let mut expect_ident = true;
        loop {
            match self.sig_at(&mut j) {
                Some(Tok::Ident(_)) if expect_ident => expect_ident = false,
                Some(Tok::Sym(",")) if !expect_ident => expect_ident = true,
                Some(Tok::Sym(")")) => break,
                _ => return false,
            }
        }
        matches!(self.sig_at(&mut j), Some(Tok::Sym("=>")))
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let line = self.line();
        let Some(t) = self.next() else {
            return Err("unexpected end of file in an expression".into());
        };
        match t.tok {
            Tok::Num(_) => Ok(Expr::Lit),
            Tok::Multi(text) => Ok(Expr::Multi(text, t.line)),
            Tok::Str { interps, .. } => {
                let mut exprs = Vec::new();
                for toks in interps {
                    let mut p = Parser::new(toks);
                    p.skip_nl = vec![true];
                    let e = p.expr().map_err(|e| format!("in ${{}}: {e}"))?;
                    if p.i < p.toks.len() {
                        return Err(format!("line {line}: unexpected {} in ${{}}", p.describe()));
                    }
                    exprs.push(e);
                }
                Ok(Expr::Str(exprs))
            }
            Tok::Ident(name) => {
                if matches!(name.as_str(), "true" | "false" | "null") {
                    return Ok(Expr::Lit);
                }
                if self.is_sym("=>") {
                    self.i += 1;
                    let body = self.expr()?;
                    return Ok(Expr::Lambda(vec![name], Box::new(body)));
                }
                if self.eat("(") {
                    let args = self.args()?;
                    return Ok(Expr::Call { name, line, args });
                }
                Ok(Expr::Ident(name, line))
            }
            Tok::Sym("(") => {
                if self.lambda_ahead() {
                    self.skip_nl.push(true);
                    let mut vars = Vec::new();
                    while !self.eat(")") {
                        vars.push(self.ident("a lambda parameter")?);
                        self.eat(",");
                    }
                    self.skip_nl.pop();
                    self.expect("=>", "after lambda parameters")?;
                    let body = self.expr()?;
                    return Ok(Expr::Lambda(vars, Box::new(body)));
                }
                self.skip_nl.push(true);
                let e = self.expr();
                let close = e.is_ok() && self.eat(")");
                self.skip_nl.pop();
                let e = e?;
                if !close {
                    return Err(format!("line {line}: expected ')'"));
                }
                Ok(e)
            }
            Tok::Sym("[") => self.array(line),
            Tok::Sym("{") => self.object(line),
            other => Err(format!(
                "line {}: unexpected {} in an expression",
                t.line,
                match other {
                    Tok::Sym(s) => format!("'{s}'"),
                    Tok::Newline => "end of line".into(),
                    _ => "token".into(),
                }
            )),
        }
    }

    /// Items separated by newlines or commas, up to `close`.
    fn items<T>(
        &mut self,
        close: &str,
        line: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        self.skip_nl.push(false);
        let result = (|| {
            let mut out = Vec::new();
            loop {
                while matches!(self.toks.get(self.i).map(|t| &t.tok), Some(Tok::Newline))
                    || self.is_sym(",")
                {
                    self.i += 1;
                }
                if self.eat(close) {
                    return Ok(out);
                }
                if self.i >= self.toks.len() {
                    return Err(format!("line {line}: unclosed '{close}'"));
                }
                out.push(item(self)?);
                match self.toks.get(self.i).map(|t| &t.tok) {
                    Some(Tok::Newline) | Some(Tok::Sym(",")) => {}
                    Some(Tok::Sym(s)) if *s == close => {}
                    _ => {
                        return Err(format!(
                            "line {}: expected a new line, ',' or '{close}', found {}",
                            self.line(),
                            self.describe()
                        ))
                    }
                }
            }
        })();
        self.skip_nl.pop();
        result
    }

    fn array(&mut self, line: usize) -> Result<Expr, String> {
        if self.is_ident("for") {
            self.i += 1;
            let mut vars = Vec::new();
            if self.eat("(") {
                vars.push(self.ident("a loop variable")?);
                self.expect(",", "between loop variables")?;
                vars.push(self.ident("a loop index")?);
                self.expect(")", "after the loop variables")?;
            } else {
                vars.push(self.ident("a loop variable")?);
            }
            if !self.is_ident("in") {
                return Err(format!("line {}: expected 'in' in a for loop", self.line()));
            }
            self.i += 1;
            self.skip_nl.push(true);
            let iter = self.expr();
            let colon = iter.is_ok() && self.eat(":");
            let body = if colon {
                if self.is_ident("if") {
                    self.if_body()
                } else {
                    self.expr()
                }
            } else {
                Err(format!("line {}: expected ':' in a for loop", self.line()))
            };
            let close = body.is_ok() && self.eat("]");
            self.skip_nl.pop();
            let (iter, body) = (iter?, body?);
            if !close {
                return Err(format!(
                    "line {}: expected ']' closing the for loop",
                    self.line()
                ));
            }
            return Ok(Expr::For {
                vars,
                iter: Box::new(iter),
                body: Box::new(body),
            });
        }
        Ok(Expr::Array(self.items("]", line, |p| p.expr())?))
    }

    fn object(&mut self, line: usize) -> Result<Expr, String> {
        let props = self.items("}", line, |p| {
            let kline = p.line();
            let key = match p.next().map(|t| t.tok) {
                Some(Tok::Ident(k)) => (k, Expr::Lit),
                Some(Tok::Str { parts, interps }) => {
                    let text = parts.concat();
                    let key_expr = if interps.is_empty() {
                        Expr::Lit
                    } else {
                        p.i -= 1;
                        p.primary()?
                    };
                    (text, key_expr)
                }
                _ => return Err(format!("line {kline}: expected a property name")),
            };
            p.expect(":", &format!("after the property name '{}'", key.0))?;
            let value = p.expr()?;
            Ok((key.0, key.1, value))
        })?;
        Ok(Expr::Object(props))
    }
}

fn parse(src: &str) -> Result<Vec<Decl>, Vec<String>> {
    let tokens = lex(src).map_err(|e| vec![e])?;
    let unbalanced = check_delimiters(&tokens);
    if !unbalanced.is_empty() {
        return Err(unbalanced);
    }
    Parser::new(tokens).file().map_err(|e| vec![e])
}

// ------------------------------------------------------------------------------------------------------------
// Checks on one file
// ------------------------------------------------------------------------------------------------------------

/// The Bicep built-ins the templates use (namespaces, then functions); anything else must be declared. A template
/// that needs another built-in adds it here.
const BUILTINS: &[&str] = &[
    "az",
    "sys",
    "resourceGroup",
    "subscription",
    "tenant",
    "environment",
    "resourceId",
    "subscriptionResourceId",
    "listKeys",
    "uniqueString",
    "guid",
    "concat",
    "format",
    "string",
    "json",
    "toLower",
    "replace",
    "take",
    "join",
    "empty",
    "union",
    "map",
    "items",
];

const DECORATORS: &[&str] = &[
    "description",
    "minLength",
    "maxLength",
    "minValue",
    "maxValue",
    "allowed",
    "secure",
    "metadata",
    "batchSize",
];

/// A resource type: `Namespace/type[/child...]@yyyy-mm-dd[-preview]`, or `@v1.0` / `@beta` for an extension's
/// types (Microsoft Graph) when the file declares an extension.
fn check_resource_type(spec: &str, has_extension: bool) -> Result<(), String> {
    let Some((ty, version)) = spec.split_once('@') else {
        return Err(format!("resource type '{spec}' has no @apiVersion"));
    };
    let segs: Vec<&str> = ty.split('/').collect();
    let ty_ok = segs.len() >= 2
        && segs.iter().all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
        && segs[0].contains('.');
    if !ty_ok {
        return Err(format!("resource type '{ty}' is not Namespace/type"));
    }
    let b = version.as_bytes();
    let dated = b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && (b.len() == 10 || &version[10..] == "-preview" || &version[10..] == "-beta");
    let extension_version = has_extension
        && (version == "beta"
            || (version.starts_with('v')
                && version[1..]
                    .split('.')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))));
    if dated || extension_version {
        Ok(())
    } else {
        Err(format!("resource type '{spec}' has no valid @apiVersion"))
    }
}

/// Every identifier an expression uses, with the scope of loop and lambda variables.
fn references(e: &Expr, scope: &mut Vec<String>, out: &mut Vec<(String, usize, bool)>) {
    match e {
        Expr::Ident(name, line) => {
            if !scope.contains(name) {
                out.push((name.clone(), *line, false));
            }
        }
        Expr::Lit | Expr::Multi(..) => {}
        Expr::Str(parts) => parts.iter().for_each(|p| references(p, scope, out)),
        Expr::Call { name, line, args } => {
            out.push((name.clone(), *line, true));
            args.iter().for_each(|a| references(a, scope, out));
        }
        Expr::Member(target, _, _) => references(target, scope, out),
        Expr::MemberCall(target, _, args, _) => {
            references(target, scope, out);
            args.iter().for_each(|a| references(a, scope, out));
        }
        Expr::Index(a, b) | Expr::If(a, b) => {
            references(a, scope, out);
            references(b, scope, out);
        }
        Expr::Array(items) | Expr::Op(items) => {
            items.iter().for_each(|i| references(i, scope, out))
        }
        Expr::Object(props) => {
            for (_, k, v) in props {
                references(k, scope, out);
                references(v, scope, out);
            }
        }
        Expr::For { vars, iter, body } => {
            references(iter, scope, out);
            let n = scope.len();
            scope.extend(vars.iter().cloned());
            references(body, scope, out);
            scope.truncate(n);
        }
        Expr::Lambda(vars, body) => {
            let n = scope.len();
            scope.extend(vars.iter().cloned());
            references(body, scope, out);
            scope.truncate(n);
        }
    }
}

/// Calls every expression below `e` (itself included).
fn visit(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(e);
    match e {
        Expr::Str(parts) | Expr::Array(parts) | Expr::Op(parts) => {
            parts.iter().for_each(|p| visit(p, f))
        }
        Expr::Call { args, .. } => args.iter().for_each(|a| visit(a, f)),
        Expr::Member(t, _, _) => visit(t, f),
        Expr::MemberCall(t, _, args, _) => {
            visit(t, f);
            args.iter().for_each(|a| visit(a, f));
        }
        Expr::Index(a, b) | Expr::If(a, b) => {
            visit(a, f);
            visit(b, f);
        }
        Expr::Object(props) => {
            for (_, k, v) in props {
                visit(k, f);
                visit(v, f);
            }
        }
        Expr::For { iter, body, .. } => {
            visit(iter, f);
            visit(body, f);
        }
        Expr::Lambda(_, body) => visit(body, f),
        Expr::Ident(..) | Expr::Lit | Expr::Multi(..) => {}
    }
}

/// The checks that need only the file itself.
fn check_file(decls: &[Decl]) -> Vec<String> {
    let mut errors = Vec::new();
    let has_extension = decls.iter().any(|d| d.kind == Kind::Extension);
    let mut declared: BTreeMap<&str, (Kind, usize)> = BTreeMap::new();
    for d in decls {
        if matches!(d.kind, Kind::TargetScope) {
            continue;
        }
        // Outputs live in their own namespace.
        if d.kind == Kind::Output {
            continue;
        }
        if let Some((_, first)) = declared.insert(&d.name, (d.kind, d.line)) {
            errors.push(format!(
                "line {}: '{}' is declared twice (first on line {first})",
                d.line, d.name
            ));
        }
    }
    let mut outputs = BTreeSet::new();
    for d in decls.iter().filter(|d| d.kind == Kind::Output) {
        if !outputs.insert(&d.name) {
            errors.push(format!(
                "line {}: output '{}' is declared twice",
                d.line, d.name
            ));
        }
    }
    let mut used: BTreeSet<String> = BTreeSet::new();
    for d in decls {
        if d.kind == Kind::Resource {
            if let Err(e) = check_resource_type(&d.spec, has_extension) {
                errors.push(format!("line {}: {e}", d.line));
            }
            if d.existing && !matches!(&d.value, Some(Expr::Object(_))) {
                errors.push(format!(
                    "line {}: an existing resource takes a plain object",
                    d.line
                ));
            }
        }
        if d.kind == Kind::TargetScope {
            let ok = matches!(&d.value, Some(Expr::Str(p)) if p.is_empty());
            if !ok {
                errors.push(format!(
                    "line {}: targetScope must be a plain string",
                    d.line
                ));
            }
        }
        for dec in &d.decorators {
            let name = match dec {
                Expr::Call { name, .. } => name.as_str(),
                Expr::MemberCall(_, name, _, _) => name.as_str(),
                _ => "",
            };
            if !DECORATORS.contains(&name) {
                errors.push(format!("line {}: unknown decorator @{name}", d.line));
            }
        }
        let mut refs = Vec::new();
        let mut scope = Vec::new();
        // A decorator's own name is not a reference; its arguments are.
        for dec in &d.decorators {
            if let Expr::Call { args, .. } | Expr::MemberCall(_, _, args, _) = dec {
                args.iter()
                    .for_each(|a| references(a, &mut scope, &mut refs));
            }
        }
        if let Some(v) = &d.value {
            references(v, &mut scope, &mut refs);
        }
        for (name, line, call) in refs {
            if call {
                if !BUILTINS.contains(&name.as_str()) {
                    errors.push(format!("line {line}: unknown function '{name}'"));
                }
                continue;
            }
            if name == d.name && d.kind != Kind::Output {
                errors.push(format!("line {line}: '{name}' refers to itself"));
                continue;
            }
            if declared.contains_key(name.as_str()) {
                used.insert(name);
            } else if !BUILTINS.contains(&name.as_str()) {
                errors.push(format!("line {line}: '{name}' is not declared"));
            }
        }
        if let Some(v) = &d.value {
            visit(v, &mut |e| {
                if let Expr::Multi(text, line) = e {
                    if text.contains("${") {
                        errors.push(format!(
                            "line {line}: '${{' in a ''' string is not interpolated by Bicep (use replace() or format())"
                        ));
                    }
                }
            });
        }
    }
    for d in decls {
        if matches!(d.kind, Kind::Param | Kind::Var) && !used.contains(&d.name) {
            errors.push(format!(
                "line {}: {} '{}' is never used",
                d.line,
                if d.kind == Kind::Param {
                    "param"
                } else {
                    "var"
                },
                d.name
            ));
        }
    }
    errors
}

// ------------------------------------------------------------------------------------------------------------
// Checks across files
// ------------------------------------------------------------------------------------------------------------

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The object a module passes as `params` (through `if` and `for`).
fn module_params(body: &Expr) -> Option<&[(String, Expr, Expr)]> {
    match body {
        Expr::Object(props) => {
            props
                .iter()
                .find(|(k, _, _)| k == "params")
                .and_then(|(_, _, v)| match v {
                    Expr::Object(p) => Some(p.as_slice()),
                    _ => None,
                })
        }
        Expr::If(_, b) => module_params(b),
        Expr::For { body, .. } => module_params(body),
        _ => None,
    }
}

/// Every check over a set of files (paths relative to the repository root, e.g. `bicep/main.bicep`), with
/// `bicep/bicepconfig.json` and `bicep/main.parameters.json` when present in `files`.
fn check_bicep(files: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let mut errors = Vec::new();
    let mut parsed: BTreeMap<PathBuf, Vec<Decl>> = BTreeMap::new();
    for (path, src) in files
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "bicep"))
    {
        match parse(src) {
            Ok(decls) => {
                errors.extend(
                    check_file(&decls)
                        .into_iter()
                        .map(|e| format!("{}: {e}", path.display())),
                );
                parsed.insert(path.clone(), decls);
            }
            Err(es) => errors.extend(es.into_iter().map(|e| format!("{}: {e}", path.display()))),
        }
    }
    let config: Option<Value> = files
        .iter()
        .find(|(p, _)| p.file_name().is_some_and(|n| n == "bicepconfig.json"))
        .and_then(|(_, s)| serde_json::from_str(s).ok());
    for (path, decls) in &parsed {
        let dir = path.parent().unwrap_or(Path::new(""));
        let modules: BTreeMap<&str, &Decl> = decls
            .iter()
            .filter(|d| d.kind == Kind::Module)
            .map(|d| (d.name.as_str(), d))
            .collect();
        for d in decls.iter().filter(|d| d.kind == Kind::Extension) {
            let known = config
                .as_ref()
                .and_then(|c| c["extensions"].get(&d.spec))
                .is_some();
            if !known {
                errors.push(format!(
                    "{}: line {}: extension '{}' is not declared in bicepconfig.json",
                    path.display(),
                    d.line,
                    d.spec
                ));
            }
        }
        for d in modules.values() {
            let at = format!("{}: line {}: module {}", path.display(), d.line, d.name);
            if d.spec.contains(':') {
                continue; // registry module
            }
            let target = normalize(&dir.join(&d.spec));
            let Some(target_decls) = parsed.get(&target) else {
                if files.contains_key(&target) {
                    continue; // the target did not parse (reported above)
                }
                errors.push(format!("{at}: '{}' does not exist", d.spec));
                continue;
            };
            let declared: BTreeMap<&str, &Decl> = target_decls
                .iter()
                .filter(|t| t.kind == Kind::Param)
                .map(|t| (t.name.as_str(), t))
                .collect();
            let passed: BTreeSet<&str> = d
                .value
                .as_ref()
                .and_then(module_params)
                .map(|p| p.iter().map(|(k, _, _)| k.as_str()).collect())
                .unwrap_or_default();
            for p in &passed {
                if !declared.contains_key(p) {
                    errors.push(format!(
                        "{at}: passes '{p}', which {} does not declare",
                        d.spec
                    ));
                }
            }
            for (name, t) in &declared {
                if !t.has_default && !passed.contains(name) {
                    errors.push(format!(
                        "{at}: does not pass '{name}', which {} requires",
                        d.spec
                    ));
                }
            }
        }
        // <module>.outputs.<name>
        for d in decls {
            let Some(v) = &d.value else { continue };
            visit(v, &mut |e| {
                let Expr::Member(inner, out_name, line) = e else {
                    return;
                };
                let Expr::Member(m, outputs, _) = inner.as_ref() else {
                    return;
                };
                let Expr::Ident(m, _) = m.as_ref() else {
                    return;
                };
                if outputs != "outputs" {
                    return;
                }
                let Some(module) = modules.get(m.as_str()) else {
                    return;
                };
                let target = normalize(&dir.join(&module.spec));
                let Some(target_decls) = parsed.get(&target) else {
                    return;
                };
                let exists = target_decls
                    .iter()
                    .any(|t| t.kind == Kind::Output && &t.name == out_name);
                if !exists {
                    errors.push(format!(
                        "{}: line {line}: {m}.outputs.{out_name}: {} has no output '{out_name}'",
                        path.display(),
                        module.spec
                    ));
                }
            });
        }
    }
    // main.parameters.json
    for (path, src) in files
        .iter()
        .filter(|(p, _)| p.to_string_lossy().ends_with(".parameters.json"))
    {
        let name = path.to_string_lossy().replace(".parameters.json", ".bicep");
        let Some(decls) = parsed.get(Path::new(&name)) else {
            errors.push(format!("{}: no {name} next to it", path.display()));
            continue;
        };
        let v: Value = match serde_json::from_str(src) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("{}: not JSON: {e}", path.display()));
                continue;
            }
        };
        let given: BTreeSet<String> = v["parameters"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for g in &given {
            let declared = decls.iter().any(|d| d.kind == Kind::Param && &d.name == g);
            if !declared {
                errors.push(format!(
                    "{}: '{g}' is not a param of {name}",
                    path.display()
                ));
            }
        }
        for d in decls
            .iter()
            .filter(|d| d.kind == Kind::Param && !d.has_default)
        {
            let secure = d
                .decorators
                .iter()
                .any(|e| matches!(e, Expr::Call { name, .. } if name == "secure"));
            if !secure && !given.contains(&d.name) {
                errors.push(format!(
                    "{}: the required param '{}' of {name} has no value",
                    path.display(),
                    d.name
                ));
            }
        }
    }
    errors
}

fn repo_files(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let root = root();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            repo_files(&p, out);
        } else {
            let rel = p.strip_prefix(&root).expect("under the root").to_path_buf();
            out.insert(rel, fs::read_to_string(&p).expect("text file"));
        }
    }
}

// ------------------------------------------------------------------------------------------------------------
// ADF
// ------------------------------------------------------------------------------------------------------------

/// `pipeline().globalParameters.X` names in every string of `v`.
fn global_parameter_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            let marker = "pipeline().globalParameters.";
            let mut rest = s.as_str();
            while let Some(k) = rest.find(marker) {
                rest = &rest[k + marker.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.insert(name);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| global_parameter_refs(x, out)),
        Value::Object(m) => m.values().for_each(|x| global_parameter_refs(x, out)),
        _ => {}
    }
}

/// Every activity list of a pipeline (top level, If branches, ForEach/Until bodies, Switch cases), with a label.
fn activity_lists<'a>(label: &str, list: &'a Value, out: &mut Vec<(String, &'a Vec<Value>)>) {
    let Some(acts) = list.as_array() else { return };
    out.push((label.to_string(), acts));
    for a in acts {
        let tp = &a["typeProperties"];
        let name = a["name"].as_str().unwrap_or("?");
        for key in [
            "ifTrueActivities",
            "ifFalseActivities",
            "activities",
            "defaultActivities",
        ] {
            activity_lists(&format!("{name}.{key}"), &tp[key], out);
        }
        if let Some(cases) = tp["cases"].as_array() {
            for c in cases {
                activity_lists(&format!("{name}.cases"), &c["activities"], out);
            }
        }
    }
}

fn conditions(dep: &Value) -> Vec<&str> {
    dep["dependencyConditions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The string of an ADF value (`"x"` or `{"value": "x", "type": "Expression"}`).
fn adf_text(v: &Value) -> &str {
    v.as_str().or(v["value"].as_str()).unwrap_or("")
}

/// The checks of one pipeline; `pipelines` are the names of every pipeline in `adf/pipeline`.
fn check_pipeline(
    file: &str,
    p: &Value,
    globals: &BTreeSet<String>,
    pipelines: &BTreeSet<String>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let name = p["name"].as_str().unwrap_or(file);
    let mut lists = Vec::new();
    activity_lists("activities", &p["properties"]["activities"], &mut lists);
    if lists.is_empty() {
        errors.push(format!("{file}: no activities"));
        return errors;
    }
    for (label, acts) in &lists {
        let names: Vec<&str> = acts.iter().filter_map(|a| a["name"].as_str()).collect();
        for a in acts.iter() {
            let an = a["name"].as_str().unwrap_or("?");
            for dep in a["dependsOn"].as_array().into_iter().flatten() {
                let target = dep["activity"].as_str().unwrap_or("");
                if !names.contains(&target) {
                    errors.push(format!(
                        "{file}: {an} depends on '{target}', which is not an activity of {label}"
                    ));
                }
                for c in conditions(dep) {
                    if !["Succeeded", "Failed", "Skipped", "Completed"].contains(&c) {
                        errors.push(format!("{file}: {an}: unknown dependency condition {c}"));
                    }
                }
            }
            if a["type"] == "ExecutePipeline" {
                let target = a["typeProperties"]["pipeline"]["referenceName"]
                    .as_str()
                    .unwrap_or("");
                if !pipelines.contains(target) {
                    errors.push(format!("{file}: {an} runs the unknown pipeline '{target}'"));
                }
            }
        }
    }
    let mut refs = BTreeSet::new();
    global_parameter_refs(p, &mut refs);
    for r in refs.difference(globals) {
        errors.push(format!(
            "{file}: pipeline().globalParameters.{r} is not a global parameter of the factory"
        ));
    }
    // The failure path.
    let top = lists[0].1;
    let alert = top.iter().find(|a| {
        a["type"] == "WebActivity"
            && adf_text(&a["typeProperties"]["url"])
                .contains("pipeline().globalParameters.alertWebhookUrl")
    });
    let Some(alert) = alert else {
        errors.push(format!(
            "{file}: {name} has no failure path (a Web activity POSTing to pipeline().globalParameters.alertWebhookUrl)"
        ));
        return errors;
    };
    let alert_name = alert["name"].as_str().unwrap_or("?");
    if alert["typeProperties"]["method"] != "POST" {
        errors.push(format!("{file}: {alert_name} must POST"));
    }
    let fail = top.iter().find(|a| {
        a["type"] == "Fail"
            && a["dependsOn"].as_array().is_some_and(|d| {
                d.iter().any(|dep| {
                    dep["activity"] == alert_name
                        && (conditions(dep).contains(&"Completed")
                            || (conditions(dep).contains(&"Succeeded")
                                && conditions(dep).contains(&"Failed")))
                })
            })
    });
    if fail.is_none() {
        errors.push(format!(
            "{file}: no Fail activity after {alert_name} (on Completed), so the run would not show as failed"
        ));
    }
    let fail_name = fail.and_then(|f| f["name"].as_str()).unwrap_or("");
    let main: Vec<&Value> = top
        .iter()
        .filter(|a| a["name"] != alert_name && a["name"] != fail_name)
        .collect();
    let depended: BTreeSet<&str> = main
        .iter()
        .flat_map(|a| a["dependsOn"].as_array().into_iter().flatten())
        .filter_map(|d| d["activity"].as_str())
        .collect();
    let leaves: Vec<&Value> = main
        .iter()
        .copied()
        .filter(|a| !depended.contains(a["name"].as_str().unwrap_or("")))
        .collect();
    if leaves.len() != 1 {
        errors.push(format!(
            "{file}: the failure path needs the main activities to end in one activity, found {}",
            leaves.len()
        ));
    }
    for leaf in &leaves {
        let leaf_name = leaf["name"].as_str().unwrap_or("?");
        let has_upstream = leaf["dependsOn"].as_array().is_some_and(|d| !d.is_empty());
        let dep = alert["dependsOn"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["activity"] == leaf_name);
        let ok = dep.is_some_and(|d| {
            let c = conditions(d);
            c.contains(&"Failed") && (!has_upstream || c.contains(&"Skipped"))
        });
        if !ok {
            errors.push(format!(
                "{file}: {alert_name} must depend on {leaf_name} with Failed{} so that any failure reaches it",
                if has_upstream { " and Skipped" } else { "" }
            ));
        }
    }
    // The body: common alert schema once the @{...} interpolations are filled in.
    let body = adf_text(&alert["typeProperties"]["body"]);
    let mut filled = String::new();
    let mut rest = body;
    while let Some(k) = rest.find("@{") {
        filled.push_str(&rest[..k]);
        let end = rest[k..].find('}').map_or(rest.len(), |e| k + e + 1);
        filled.push('x');
        rest = &rest[end..];
    }
    filled.push_str(rest);
    match serde_json::from_str::<Value>(&filled) {
        Err(e) => errors.push(format!("{file}: {alert_name} body is not JSON: {e}")),
        Ok(b) => {
            if b["schemaId"] != "azureMonitorCommonAlertSchema" {
                errors.push(format!(
                    "{file}: {alert_name} body is not the common alert schema"
                ));
            }
            let e = &b["data"]["essentials"];
            for k in [
                "alertId",
                "alertRule",
                "severity",
                "signalType",
                "monitorCondition",
                "monitoringService",
                "alertTargetIDs",
                "configurationItems",
                "originAlertId",
                "firedDateTime",
                "description",
                "essentialsVersion",
                "alertContextVersion",
            ] {
                if e.get(k).is_none() {
                    errors.push(format!(
                        "{file}: {alert_name} body lacks data.essentials.{k}"
                    ));
                }
            }
            for k in ["notificationId", "incidentKey", "rule", "subject"] {
                if b["data"]["alertContext"].get(k).is_none() {
                    errors.push(format!(
                        "{file}: {alert_name} body lacks data.alertContext.{k}"
                    ));
                }
            }
        }
    }
    errors
}

/// Every ADF check over `files` (paths relative to the root: `adf/...`, plus `bicep/modules/datafactory.bicep`).
fn check_adf(files: &BTreeMap<PathBuf, String>) -> Vec<String> {
    let mut errors = Vec::new();
    let json_of = |prefix: &str| -> Vec<(String, Value)> {
        files
            .iter()
            .filter(|(p, _)| p.starts_with(prefix) && p.extension().is_some_and(|e| e == "json"))
            .filter_map(|(p, s)| match serde_json::from_str(s) {
                Ok(v) => Some((p.display().to_string(), v)),
                Err(_) => None,
            })
            .collect()
    };
    for (p, s) in files.iter().filter(|(p, _)| p.starts_with("adf")) {
        if let Err(e) = serde_json::from_str::<Value>(s) {
            errors.push(format!("{}: not JSON: {e}", p.display()));
        }
    }
    let factories = json_of("adf/factory");
    if factories.len() != 1 {
        errors.push(format!(
            "adf/factory: expected one factory, found {}",
            factories.len()
        ));
        return errors;
    }
    let globals: BTreeSet<String> = factories[0].1["properties"]["globalParameters"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    // The global parameters bicep deploys (datafactory.bicep: the factory resource's properties.globalParameters).
    if let Some(src) = files.get(Path::new("bicep/modules/datafactory.bicep")) {
        match parse(src) {
            Err(e) => errors.push(format!("bicep/modules/datafactory.bicep: {}", e.join("; "))),
            Ok(decls) => {
                let mut deployed = BTreeSet::new();
                for d in decls.iter().filter(|d| {
                    d.kind == Kind::Resource
                        && d.spec.starts_with("Microsoft.DataFactory/factories@")
                }) {
                    if let Some(v) = &d.value {
                        visit(v, &mut |e| {
                            if let Expr::Object(props) = e {
                                for (k, _, v) in props {
                                    if k == "globalParameters" {
                                        if let Expr::Object(g) = v {
                                            deployed.extend(g.iter().map(|(k, _, _)| k.clone()));
                                        }
                                    }
                                }
                            }
                        });
                    }
                }
                for g in globals.symmetric_difference(&deployed) {
                    errors.push(format!(
                        "global parameter {g}: in {} but not in bicep/modules/datafactory.bicep, or the other way round",
                        factories[0].0
                    ));
                }
            }
        }
    }
    let pipelines = json_of("adf/pipeline");
    let names: BTreeSet<String> = pipelines
        .iter()
        .filter_map(|(_, v)| v["name"].as_str().map(str::to_string))
        .collect();
    for (file, p) in &pipelines {
        errors.extend(check_pipeline(file, p, &globals, &names));
    }
    errors
}

// ------------------------------------------------------------------------------------------------------------
// The repository
// ------------------------------------------------------------------------------------------------------------

#[test]
fn every_bicep_template_parses_and_passes_the_checks() {
    let mut files = BTreeMap::new();
    repo_files(&root().join("bicep"), &mut files);
    let bicep: Vec<&PathBuf> = files
        .keys()
        .filter(|p| p.extension().is_some_and(|e| e == "bicep"))
        .collect();
    assert!(bicep.len() >= 10, "bicep files: {bicep:?}");
    let mut counts = BTreeMap::new();
    for (p, src) in files
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "bicep"))
    {
        if let Ok(decls) = parse(src) {
            let n = |k: Kind| decls.iter().filter(|d| d.kind == k).count();
            counts.insert(
                p.display().to_string(),
                format!(
                    "{} params, {} vars, {} resources, {} modules, {} outputs",
                    n(Kind::Param),
                    n(Kind::Var),
                    n(Kind::Resource),
                    n(Kind::Module),
                    n(Kind::Output)
                ),
            );
        }
    }
    for (p, c) in &counts {
        println!("{p}: {c}");
    }
    let errors = check_bicep(&files);
    assert!(
        errors.is_empty(),
        "{} problems:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

#[test]
fn the_alert_rules_match_the_app_rules_and_use_the_action_group() {
    let src = fs::read_to_string(root().join("bicep/modules/alerts.bicep")).unwrap();
    let decls = parse(&src).expect("alerts.bicep parses");
    let param_default = |name: &str| -> String {
        let d = decls
            .iter()
            .find(|d| d.kind == Kind::Param && d.name == name)
            .unwrap_or_else(|| panic!("alerts.bicep: param {name}"));
        let line = src.lines().nth(d.line - 1).unwrap_or("");
        line.split_once('=')
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    // The defaults are the app's (core/src/ops/alerts/mod.rs, AlertSettings::default).
    let app = patientflow_core::ops::alerts::AlertSettings::default();
    assert_eq!(
        param_default("goldLateMinutes"),
        app.gold_late_minutes.to_string()
    );
    assert_eq!(
        param_default("silentFeedMinutes"),
        app.silent_feed_minutes.to_string()
    );
    assert_eq!(
        param_default("dqQuarantineRate")
            .trim_matches('\'')
            .parse::<f64>()
            .unwrap(),
        app.dq_quarantine_rate
    );
    let rules: Vec<&Decl> = decls
        .iter()
        .filter(|d| {
            d.kind == Kind::Resource && !d.spec.starts_with("Microsoft.Insights/actionGroups@")
        })
        .filter(|d| !d.spec.starts_with("Microsoft.Insights/webtests@"))
        .collect();
    for needle in [
        "pipeline_run_failed",
        "retries_exhausted",
        "patientflow.run.duration",
        "patientflow.quarantine.rate",
        "patientflow.ingest.lag",
    ] {
        assert!(src.contains(needle), "alerts.bicep does not use {needle}");
    }
    for d in &rules {
        let text = format!("{:?}", d.value);
        assert!(
            text.contains("actionGroup"),
            "{}: not sent to the action group",
            d.name
        );
        assert!(text.contains("autoMitigate"), "{}: no autoMitigate", d.name);
    }
    assert!(rules.len() >= 9, "{} alert rules", rules.len());
}

#[test]
fn adf_pipelines_depend_on_real_activities_and_alert_on_failure() {
    let mut files = BTreeMap::new();
    repo_files(&root().join("adf"), &mut files);
    let df = "bicep/modules/datafactory.bicep";
    files.insert(df.into(), fs::read_to_string(root().join(df)).unwrap());
    let pipelines = files
        .keys()
        .filter(|p| p.starts_with("adf/pipeline"))
        .count();
    assert!(pipelines >= 3, "{pipelines} pipelines");
    let errors = check_adf(&files);
    println!("{pipelines} pipelines checked");
    assert!(
        errors.is_empty(),
        "{} problems:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

// ------------------------------------------------------------------------------------------------------------
// Each check fails on a broken snippet
// ------------------------------------------------------------------------------------------------------------

fn one(path: &str, src: &str) -> BTreeMap<PathBuf, String> {
    BTreeMap::from([(PathBuf::from(path), src.to_string())])
}

fn errors_of(src: &str) -> Vec<String> {
    check_bicep(&one("bicep/t.bicep", src))
}

fn assert_error(errors: &[String], needle: &str) {
    assert!(
        errors.iter().any(|e| e.contains(needle)),
        "expected an error containing {needle:?}, got {errors:#?}"
    );
}

const GOOD: &str = r#"
// comment
/* block
   comment */
targetScope = 'resourceGroup'

@description('Region.')
@minLength(2)
param location string = resourceGroup().location

param names array = [
  'a'
  'b'
]

param tags object = {}

var prefix = toLower('x-${location}-${uniqueString(resourceGroup().id)}')
var query = replace('''
requests | where name == "__N__" | extend s = @"\w+"
''', '__N__', prefix)
var joined = join(map(items(tags), t => '${t.key}=${t.value}'), ',')

resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' = [for (n, i) in names: if (i > 0) {
  name: '${prefix}${n}'
  location: location
  tags: union(tags, {
    'hidden-link:${prefix}': 'Resource'
    q: query
  })
  properties: {
    list: [for x in names: { v: x, i: i }]
    ok: empty(joined) ? {} : { a: 1 }
  }
}]

resource kv 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: prefix
}

output id string = kv.id
output first string = sa[0].properties.primaryEndpoints.blob
"#;

#[test]
fn a_good_snippet_passes() {
    let errors = errors_of(GOOD);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn unbalanced_delimiters_are_reported() {
    assert_error(&errors_of("var a = [\n  1\n"), "'[' is never closed");
    assert_error(&errors_of("var a = (1]\n"), "']' closes '('");
    assert_error(&errors_of("var a = 1}\n"), "'}' closes nothing");
    // A brace inside a string or a comment does not count.
    assert!(errors_of("var a = '}'\n// {\noutput o string = a\n").is_empty());
}

#[test]
fn unterminated_strings_and_comments_are_reported() {
    assert_error(&errors_of("var a = 'abc\n"), "unterminated string");
    assert_error(&errors_of("var a = '''abc\n"), "unterminated ''' string");
    assert_error(&errors_of("/* never closed\n"), "unterminated /* comment");
    assert_error(&errors_of("var a = 'x${b\n"), "newline inside the ${}");
    assert_error(&errors_of("var a = 'x${b"), "unterminated ${}");
}

#[test]
fn malformed_declarations_are_reported() {
    assert_error(&errors_of("param 1 string\n"), "expected a parameter name");
    assert_error(&errors_of("param p strng\n"), "unknown type 'strng'");
    assert_error(
        &errors_of("var v\n"),
        "expected '=' after the variable name",
    );
    assert_error(
        &errors_of("output o string\n"),
        "expected '=' after the output type",
    );
    assert_error(
        &errors_of("resource r Microsoft.Storage/x = {}\n"),
        "expected the resource type",
    );
    assert_error(
        &errors_of("resource r 'A.B/c@2023-01-01' = 3\n"),
        "resource or module body",
    );
    assert_error(&errors_of("module m 'x.bicep' {\n}\n"), "expected '='");
    assert_error(
        &errors_of("frobnicate x = 1\n"),
        "unknown statement 'frobnicate'",
    );
    assert_error(
        &errors_of("var a = {\n  b 1\n}\n"),
        "expected ':' after the property name 'b'",
    );
    assert_error(
        &errors_of("var a = 1 2\noutput o int = a\n"),
        "unexpected 2 after the declaration",
    );
    assert_error(&errors_of("@description('x')\n"), "decorates nothing");
    assert_error(
        &errors_of("@nonsense('x')\nparam p string\noutput o string = p\n"),
        "unknown decorator @nonsense",
    );
    assert_error(
        &errors_of("var a = 1\nvar a = 2\noutput o int = a\n"),
        "declared twice",
    );
}

#[test]
fn a_resource_type_needs_an_api_version() {
    let e = errors_of("resource r 'Microsoft.Storage/storageAccounts' = {\n  name: 'x'\n}\n");
    assert_error(&e, "has no @apiVersion");
    let e =
        errors_of("resource r 'Microsoft.Storage/storageAccounts@latest' = {\n  name: 'x'\n}\n");
    assert_error(&e, "has no valid @apiVersion");
    // Graph versions only with an extension.
    let e = errors_of("resource r 'Microsoft.Graph/applications@v1.0' = {\n  uniqueName: 'x'\n}\n");
    assert_error(&e, "has no valid @apiVersion");
    let files = BTreeMap::from([
        (
            PathBuf::from("bicep/t.bicep"),
            "extension microsoftGraphV1\nresource r 'Microsoft.Graph/applications@v1.0' = {\n  uniqueName: 'x'\n}\n".to_string(),
        ),
        (
            PathBuf::from("bicep/bicepconfig.json"),
            r#"{"extensions": {"microsoftGraphV1": "br:x"}}"#.to_string(),
        ),
    ]);
    assert!(check_bicep(&files).is_empty(), "{:#?}", check_bicep(&files));
}

#[test]
fn an_extension_must_be_configured() {
    let e = errors_of("extension microsoftGraphV1\n");
    assert_error(
        &e,
        "extension 'microsoftGraphV1' is not declared in bicepconfig.json",
    );
}

#[test]
fn undeclared_identifiers_and_unknown_functions_are_reported() {
    assert_error(
        &errors_of("var a = b\noutput o int = a\n"),
        "'b' is not declared",
    );
    assert_error(
        &errors_of("var a = 'x${nope}'\noutput o string = a\n"),
        "'nope' is not declared",
    );
    assert_error(
        &errors_of("var a = frob(1)\noutput o int = a\n"),
        "unknown function 'frob'",
    );
    assert_error(&errors_of("var a = a\n"), "refers to itself");
    // A loop or lambda variable exists only inside its loop or lambda.
    let e = errors_of(
        "param xs array\nvar a = [for x in xs: x]\nvar b = x\noutput o array = concat(a, [b])\n",
    );
    assert_error(&e, "line 3: 'x' is not declared");
    let e = errors_of(
        "param xs array\nvar a = map(xs, y => y)\nvar b = y\noutput o array = concat(a, [b])\n",
    );
    assert_error(&e, "line 3: 'y' is not declared");
    // Object keys and member names are not references.
    assert!(
        errors_of("param p object\nvar a = {\n  nope: p.alsoNope\n}\noutput o object = a\n")
            .is_empty()
    );
}

#[test]
fn unused_params_and_vars_are_reported() {
    assert_error(&errors_of("param p string\n"), "param 'p' is never used");
    assert_error(&errors_of("var v = 1\n"), "var 'v' is never used");
}

#[test]
fn interpolation_in_a_multi_line_string_is_reported() {
    let e =
        errors_of("param n int\nvar q = '''\nlet x = ${n};\n'''\noutput o string = '${q}${n}'\n");
    assert_error(&e, "is not interpolated by Bicep");
}

#[test]
fn module_paths_params_and_outputs_are_checked() {
    let target = "param required string\nparam optional int = 1\noutput id string = '${required}${optional}'\n";
    let main = |body: &str| {
        BTreeMap::from([
            (PathBuf::from("bicep/main.bicep"), body.to_string()),
            (PathBuf::from("bicep/modules/t.bicep"), target.to_string()),
        ])
    };
    let ok = main("module m 'modules/t.bicep' = {\n  name: 'm'\n  params: {\n    required: 'x'\n  }\n}\noutput o string = m.outputs.id\n");
    assert!(check_bicep(&ok).is_empty(), "{:#?}", check_bicep(&ok));
    let e = check_bicep(&main("module m 'modules/nope.bicep' = {\n  name: 'm'\n}\n"));
    assert_error(&e, "'modules/nope.bicep' does not exist");
    let e = check_bicep(&main("module m 'modules/t.bicep' = {\n  name: 'm'\n  params: {\n    required: 'x'\n    extra: 1\n  }\n}\n"));
    assert_error(&e, "passes 'extra', which modules/t.bicep does not declare");
    let e = check_bicep(&main("module m 'modules/t.bicep' = if (true) {\n  name: 'm'\n  params: {\n    optional: 2\n  }\n}\n"));
    assert_error(&e, "does not pass 'required'");
    let e = check_bicep(&main("module m 'modules/t.bicep' = {\n  name: 'm'\n  params: {\n    required: 'x'\n  }\n}\noutput o string = m.outputs.nope\n"));
    assert_error(&e, "has no output 'nope'");
}

#[test]
fn the_parameters_file_names_only_declared_params() {
    let files = |json: &str| {
        BTreeMap::from([
            (
                PathBuf::from("bicep/main.bicep"),
                "param a string\nparam b int = 1\n@secure()\nparam s string\noutput o string = '${a}${b}${s}'\n"
                    .to_string(),
            ),
            (PathBuf::from("bicep/main.parameters.json"), json.to_string()),
        ])
    };
    assert!(check_bicep(&files(r#"{"parameters": {"a": {"value": "x"}}}"#)).is_empty());
    let e = check_bicep(&files(
        r#"{"parameters": {"a": {"value": "x"}, "zzz": {"value": 1}}}"#,
    ));
    assert_error(&e, "'zzz' is not a param of bicep/main.bicep");
    let e = check_bicep(&files(r#"{"parameters": {"b": {"value": 2}}}"#));
    assert_error(&e, "the required param 'a'");
}

fn adf_files(pipeline: Value, factory_globals: &[&str]) -> BTreeMap<PathBuf, String> {
    let globals: serde_json::Map<String, Value> = factory_globals
        .iter()
        .map(|g| {
            (
                g.to_string(),
                serde_json::json!({"type": "String", "value": ""}),
            )
        })
        .collect();
    BTreeMap::from([
        (
            PathBuf::from("adf/factory/f.json"),
            serde_json::json!({"name": "f", "properties": {"globalParameters": globals}})
                .to_string(),
        ),
        (PathBuf::from("adf/pipeline/P.json"), pipeline.to_string()),
    ])
}

fn adf_pipeline(main: Value, alert_deps: Value) -> Value {
    let body = r#"{"schemaId":"azureMonitorCommonAlertSchema","data":{"essentials":{"alertId":"@{pipeline().RunId}","alertRule":"r","severity":"Sev1","signalType":"Log","monitorCondition":"Fired","monitoringService":"adf","alertTargetIDs":[],"configurationItems":[],"originAlertId":"k","firedDateTime":"@{utcNow()}","description":"d","essentialsVersion":"1.0","alertContextVersion":"1.0"},"alertContext":{"notificationId":"n","incidentKey":"k","rule":"r","subject":"s"}}}"#;
    let mut acts = main.as_array().cloned().unwrap();
    acts.push(serde_json::json!({
        "name": "Alert", "type": "WebActivity", "dependsOn": alert_deps,
        "typeProperties": {"url": {"value": "@pipeline().globalParameters.alertWebhookUrl", "type": "Expression"},
                           "method": "POST", "body": {"value": body, "type": "Expression"}}
    }));
    acts.push(serde_json::json!({
        "name": "Fail", "type": "Fail",
        "dependsOn": [{"activity": "Alert", "dependencyConditions": ["Completed"]}],
        "typeProperties": {"message": "m", "errorCode": "E"}
    }));
    serde_json::json!({"name": "P", "properties": {"activities": acts}})
}

fn two_steps() -> Value {
    serde_json::json!([
        {"name": "A", "type": "Wait", "dependsOn": []},
        {"name": "B", "type": "Wait", "dependsOn": [{"activity": "A", "dependencyConditions": ["Succeeded"]}]}
    ])
}

#[test]
fn adf_checks_fail_on_broken_pipelines() {
    let good_deps =
        serde_json::json!([{"activity": "B", "dependencyConditions": ["Failed", "Skipped"]}]);
    let good = adf_files(
        adf_pipeline(two_steps(), good_deps.clone()),
        &["alertWebhookUrl"],
    );
    assert!(check_adf(&good).is_empty(), "{:#?}", check_adf(&good));

    // dependsOn names a missing activity.
    let mut main = two_steps();
    main[1]["dependsOn"][0]["activity"] = "Nope".into();
    let e = check_adf(&adf_files(
        adf_pipeline(main, good_deps.clone()),
        &["alertWebhookUrl"],
    ));
    assert_error(
        &e,
        "B depends on 'Nope', which is not an activity of activities",
    );

    // A dependency across activity lists (inside an If branch, on a top-level activity).
    let main = serde_json::json!([
        {"name": "A", "type": "Wait", "dependsOn": []},
        {"name": "B", "type": "IfCondition", "dependsOn": [{"activity": "A", "dependencyConditions": ["Succeeded"]}],
         "typeProperties": {"ifTrueActivities": [
            {"name": "C", "type": "Wait", "dependsOn": [{"activity": "A", "dependencyConditions": ["Succeeded"]}]}]}}
    ]);
    let e = check_adf(&adf_files(
        adf_pipeline(main, good_deps.clone()),
        &["alertWebhookUrl"],
    ));
    assert_error(
        &e,
        "C depends on 'A', which is not an activity of B.ifTrueActivities",
    );

    // No failure path at all.
    let p = serde_json::json!({"name": "P", "properties": {"activities": two_steps()}});
    let e = check_adf(&adf_files(p, &["alertWebhookUrl"]));
    assert_error(&e, "has no failure path");

    // The alert only on Failed of the last step: an earlier failure (B skipped) would not alert.
    let deps = serde_json::json!([{"activity": "B", "dependencyConditions": ["Failed"]}]);
    let e = check_adf(&adf_files(
        adf_pipeline(two_steps(), deps),
        &["alertWebhookUrl"],
    ));
    assert_error(&e, "must depend on B with Failed and Skipped");

    // No Fail activity after the alert.
    let mut p = adf_pipeline(two_steps(), good_deps.clone());
    p["properties"]["activities"].as_array_mut().unwrap().pop();
    let e = check_adf(&adf_files(p, &["alertWebhookUrl"]));
    assert_error(&e, "no Fail activity after Alert");

    // A global parameter the factory lacks.
    let e = check_adf(&adf_files(
        adf_pipeline(two_steps(), good_deps.clone()),
        &[],
    ));
    assert_error(
        &e,
        "pipeline().globalParameters.alertWebhookUrl is not a global parameter",
    );

    // A body that is not the common alert schema.
    let mut p = adf_pipeline(two_steps(), good_deps.clone());
    p["properties"]["activities"][2]["typeProperties"]["body"]["value"] =
        r#"{"text": "@{pipeline().RunId}"}"#.into();
    let e = check_adf(&adf_files(p, &["alertWebhookUrl"]));
    assert_error(&e, "body is not the common alert schema");

    // An ExecutePipeline of a pipeline that does not exist.
    let mut main = two_steps();
    main[1]["type"] = "ExecutePipeline".into();
    main[1]["typeProperties"] = serde_json::json!({"pipeline": {"referenceName": "Ghost"}});
    let e = check_adf(&adf_files(
        adf_pipeline(main, good_deps.clone()),
        &["alertWebhookUrl"],
    ));
    assert_error(&e, "runs the unknown pipeline 'Ghost'");

    // Factory and bicep disagree on the global parameters.
    let mut files = adf_files(adf_pipeline(two_steps(), good_deps), &["alertWebhookUrl"]);
    files.insert(
        "bicep/modules/datafactory.bicep".into(),
        "resource f 'Microsoft.DataFactory/factories@2018-06-01' = {\n  name: 'f'\n  properties: {\n    globalParameters: {\n      other: {\n        type: 'String'\n      }\n    }\n  }\n}\n".into(),
    );
    let e = check_adf(&files);
    assert_error(&e, "global parameter alertWebhookUrl");
    assert_error(&e, "global parameter other");
}
