//! `docs/routes.md`, the route table: every route's method, path and
//! authentication, the handler that serves it and the `Core` methods (use
//! cases) that handler calls, each with its file. Generated here from the
//! code, and checked like `openapi/openapi.json`: the test fails when the
//! committed table is stale (`UPDATE_ROUTES=1 cargo test --test api routes`
//! rewrites it).
//!
//! Sources: the OpenAPI spec (method, path, authentication scheme,
//! operation id), the handlers' `#[oai(...)]` attributes and bodies in
//! `src/api/`, the routes mounted outside the spec in `src/api/mod.rs`, and
//! the `impl Core` blocks in `src/service/`. The source is read as text:
//! a use case is a `core.<method>(` call in the handler's body or in a
//! function of the same file that the body calls.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One function in a source file: its name, where it is, its body.
struct Function {
    name: String,
    /// `#[oai(...)]` attribute text just above, if any.
    oai: Option<String>,
    /// The `impl` block it is in, if any (`UsersApi`).
    owner: Option<String>,
    body: String,
}

/// The Rust files below `dir`, as paths relative to `src/` and their text.
fn sources(root: &Path, dir: &str) -> BTreeMap<String, String> {
    fn walk(root: &Path, at: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(at)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy();
                out.insert(
                    rel.replace('\\', "/"),
                    std::fs::read_to_string(&path).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &root.join(dir), &mut out);
    out
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The name after `fn ` on a line that declares a function.
fn fn_name(line: &str) -> Option<String> {
    let t = line.trim_start();
    let t = t.strip_prefix("pub(crate) ").unwrap_or(t);
    let t = t.strip_prefix("pub(super) ").unwrap_or(t);
    let t = t.strip_prefix("pub ").unwrap_or(t);
    let t = t.strip_prefix("async ").unwrap_or(t);
    let rest = t.strip_prefix("fn ")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Every function of a file, with its body (up to the closing brace at its
/// own indentation, as rustfmt lays it out).
fn functions(text: &str) -> Vec<Function> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut owner: Option<(String, usize)> = None;
    let mut oai: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_start();
        if let Some((_, depth)) = &owner
            && t == "}"
            && indent(line) == *depth
        {
            owner = None;
        }
        if t.starts_with("impl ") && t.ends_with('{') {
            let name = t
                .trim_end_matches('{')
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .to_string();
            owner = Some((name, indent(line)));
        }
        if t.starts_with("#[oai(") {
            let mut attr = String::new();
            while i < lines.len() {
                attr.push_str(lines[i].trim());
                if lines[i].trim_end().ends_with(")]") {
                    break;
                }
                i += 1;
            }
            oai = Some(attr);
            i += 1;
            continue;
        }
        if let Some(name) = fn_name(line) {
            let depth = indent(line);
            let start = i;
            let mut end = i;
            // A declaration without a body (`fn f();`) ends on its line.
            if !line.trim_end().ends_with(';') {
                while end + 1 < lines.len() {
                    end += 1;
                    if lines[end].trim() == "}" && indent(lines[end]) == depth {
                        break;
                    }
                }
            }
            out.push(Function {
                name,
                oai: oai.take(),
                owner: owner.as_ref().map(|(n, _)| n.clone()),
                body: lines[start..=end].join("\n"),
            });
            i = end + 1;
            continue;
        }
        if !t.starts_with("#[") && !t.starts_with("///") && !t.is_empty() {
            oai = None;
        }
        i += 1;
    }
    out
}

/// The `"..."` value of `key = "..."` in an attribute.
fn attr_value(attr: &str, key: &str) -> Option<String> {
    let at = attr.find(&format!("{key} = \""))? + key.len() + 4;
    let rest = &attr[at..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The identifiers `x` of `<prefix>x(` in `code` (white space around
/// `.`, `::` and `(` removed first, so chains broken over lines count), in
/// order, once each; with an empty prefix, every plain call `x(`.
fn calls(code: &str, prefix: &str) -> Vec<String> {
    let compact: Vec<char> = squeeze(code).chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let prefix: Vec<char> = prefix.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < compact.len() {
        if !ident(compact[i]) || (i > 0 && ident(compact[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < compact.len() && ident(compact[i]) {
            i += 1;
        }
        let name: String = compact[start..i].iter().collect();
        let before = &compact[..start];
        let prefixed = if prefix.is_empty() {
            // A plain call: not a method, not a path segment.
            !matches!(before.last(), Some('.' | ':'))
        } else {
            before.ends_with(&prefix)
                && !before[..before.len() - prefix.len()]
                    .last()
                    .is_some_and(|c| ident(*c) || *c == '.')
        };
        if prefixed && compact.get(i) == Some(&'(') && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// `code` with its white space folded to one space, and none next to `.`,
/// `:`, `(` or `)`.
fn squeeze(code: &str) -> String {
    let folded = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(folded.len());
    let chars: Vec<char> = folded.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let tight = |c: Option<&char>| matches!(c, Some('.' | ':' | '(' | ')'));
        if *c == ' ' && (tight(chars.get(i + 1)) || (i > 0 && tight(chars.get(i - 1)))) {
            continue;
        }
        out.push(*c);
    }
    out
}

/// `Core` method name → the file (below `src/`) whose `impl Core` defines it.
fn core_methods(service: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (file, text) in service {
        for f in functions(text) {
            if f.owner.as_deref() == Some("Core") {
                out.entry(f.name).or_insert_with(|| file.clone());
            }
        }
    }
    out
}

/// The use cases a handler reaches: its own `core.` calls, then those of
/// the functions of the same file (free, or of its own `impl`) it calls.
fn use_cases(
    handler: &Function,
    file_fns: &[Function],
    index: &BTreeMap<String, String>,
) -> String {
    let mut names = calls(&handler.body, "core.");
    let free = calls(&handler.body, "").into_iter().map(|n| (n, None));
    let methods = calls(&handler.body, "self.")
        .into_iter()
        .chain(calls(&handler.body, "Self::"))
        .map(|n| (n, handler.owner.clone()));
    for (local, owner) in free.chain(methods) {
        if local == handler.name {
            continue;
        }
        if let Some(f) = file_fns
            .iter()
            .find(|f| f.name == local && f.owner == owner)
        {
            for n in calls(&f.body, "core.") {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
    }
    let cells: Vec<String> = names
        .iter()
        .map(|n| match index.get(n) {
            Some(file) => format!("`{n}` (src/{file})"),
            None => format!("`{n}`"),
        })
        .collect();
    if cells.is_empty() {
        "none".to_string()
    } else {
        cells.join("<br>")
    }
}

struct Row {
    path: String,
    method: String,
    auth: String,
    handler: String,
    use_case: String,
}

/// A row's order: by path, then GET, POST, PUT, PATCH, DELETE.
fn order(row: &Row) -> (String, usize) {
    let m = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        .iter()
        .position(|m| *m == row.method)
        .unwrap_or(9);
    (row.path.clone(), m)
}

/// The routes the spec declares.
fn spec_rows(
    api: &BTreeMap<String, String>,
    index: &BTreeMap<String, String>,
    spec: &Value,
) -> Vec<Row> {
    let mut handlers = BTreeMap::new();
    for (file, text) in api {
        let fns = functions(text);
        for f in &fns {
            let Some(id) = f.oai.as_deref().and_then(|a| attr_value(a, "operation_id")) else {
                continue;
            };
            let owner = f.owner.clone().unwrap_or_default();
            let handler = format!("`{owner}::{}` (src/{file})", f.name);
            let admin = f.body.contains(": AdminAuth");
            handlers.insert(id, (handler, use_cases(f, &fns, index), admin));
        }
    }
    let mut rows = Vec::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            // Documented in the spec, mounted beside it (`other_rows`).
            if op.get("x-browser-route").is_some() {
                continue;
            }
            let id = op["operationId"].as_str().unwrap();
            let (handler, use_case, admin) = handlers
                .get(id)
                .unwrap_or_else(|| panic!("no handler with operation_id = {id:?} in src/api/"));
            let schemes: Vec<&str> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_object())
                .flat_map(|s| s.keys().map(String::as_str))
                .collect();
            let auth = match (schemes.as_slice(), admin) {
                ([], _) => "none".to_string(),
                (["bearerAuth"], true) => "bearer, role `admin`".to_string(),
                (["bearerAuth"], false) => "bearer".to_string(),
                (other, _) => other
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            rows.push(Row {
                path: path.clone(),
                method: method.to_ascii_uppercase(),
                auth,
                handler: handler.clone(),
                use_case: use_case.clone(),
            });
        }
    }
    rows
}

/// The routes `src/api/mod.rs` mounts beside the spec (`.at(path, ...)`,
/// `.nest(path, ...)` other than the API itself).
fn other_rows(api: &BTreeMap<String, String>, index: &BTreeMap<String, String>) -> Vec<Row> {
    let module = &api["api/mod.rs"];
    // `routes` is `routes_with_floor(core, false)`: the one list of mounts.
    let routes_fn = functions(module)
        .into_iter()
        .find(|f| f.name == "routes_with_floor")
        .unwrap();
    let compact: String = routes_fn
        .body
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut rows = Vec::new();
    for (start, _) in compact
        .match_indices(".at(")
        .chain(compact.match_indices(".nest("))
    {
        let args_at = compact[start..].find('(').unwrap() + start + 1;
        // The two arguments, up to the matching close parenthesis.
        let mut depth = 1;
        let mut end = args_at;
        for (i, c) in compact[args_at..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = args_at + i;
                break;
            }
        }
        let (path_expr, target) = compact[args_at..end].split_once(',').unwrap();
        if path_expr == "FLOOR_PATH" {
            continue; // the load benchmark's empty endpoint: never mounted by `serve`
        }
        let path = resolve_path(api, path_expr);
        if path == "/" {
            continue; // the OpenAPI service itself
        }
        for (method, handler_ref) in handlers_of(api, &compact, target) {
            let (handler, use_case, auth) = match handler_ref {
                Handler::Fn { file, name } => {
                    let fns = functions(&api[&file]);
                    let f = fns
                        .iter()
                        .find(|f| f.name == name && f.owner.is_none())
                        .unwrap();
                    let use_case = use_cases(f, &fns, index);
                    let auth = if use_case.contains("`metrics_token`") {
                        "metrics token (when set)"
                    } else {
                        "none"
                    };
                    (format!("`{name}` (src/{file})"), use_case, auth.to_string())
                }
                Handler::Expr(e) => (
                    format!("`{e}` (poem-openapi, src/api/mod.rs)"),
                    "none".to_string(),
                    "none".to_string(),
                ),
            };
            rows.push(Row {
                path: path.clone(),
                method,
                auth,
                handler,
                use_case,
            });
        }
    }
    rows
}

/// The file of `src/api/<module>`: `<module>.rs` or `<module>/mod.rs`.
fn module_file(api: &BTreeMap<String, String>, module: &str) -> String {
    let flat = format!("api/{module}.rs");
    if api.contains_key(&flat) {
        flat
    } else {
        format!("api/{module}/mod.rs")
    }
}

/// The file of `src/api/<module>` (one file, or a directory of them) that
/// defines `fn name`.
fn defining_file(api: &BTreeMap<String, String>, module: &str, name: &str) -> String {
    let dir = format!("api/{module}/");
    let decl = format!("fn {name}(");
    api.iter()
        .filter(|(f, _)| **f == format!("api/{module}.rs") || f.starts_with(&dir))
        .find(|(_, text)| text.contains(&decl))
        .map_or_else(|| module_file(api, module), |(f, _)| f.clone())
}

enum Handler {
    Fn { file: String, name: String },
    Expr(String),
}

/// A path argument: a literal (`:x` segments become `{x}`) or a
/// `module::CONST` declared in `src/api/<module>.rs`.
fn resolve_path(api: &BTreeMap<String, String>, expr: &str) -> String {
    let literal = if let Some(s) = expr.strip_prefix('"') {
        s.trim_end_matches('"').to_string()
    } else {
        let (module, name) = expr.split_once("::").unwrap();
        let text = &api[&module_file(api, module)];
        let decl = format!("pubconst{name}:&str=\"");
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let at = compact.find(&decl).unwrap() + decl.len();
        compact[at..at + compact[at..].find('"').unwrap()].to_string()
    };
    literal
        .split('/')
        .map(|seg| match seg.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The methods and handlers behind a mounted endpoint expression:
/// `poem::get(module::f)`, `module::page()` returning
/// `RouteMethod::new().get(a).post(b)`, or a value built in `routes`
/// (`let ui = api.swagger_ui();`).
fn handlers_of(
    api: &BTreeMap<String, String>,
    routes: &str,
    target: &str,
) -> Vec<(String, Handler)> {
    let in_module = |module: &str, name: &str| Handler::Fn {
        file: defining_file(api, module, name),
        name: name.to_string(),
    };
    if let Some(inner) = target.strip_prefix("poem::get(") {
        let (module, name) = inner.trim_end_matches(')').split_once("::").unwrap();
        return vec![("GET".to_string(), in_module(module, name))];
    }
    if let Some((module, ctor)) = target.strip_suffix("()").and_then(|t| t.split_once("::")) {
        let text = &api[&defining_file(api, module, ctor)];
        let f = functions(text)
            .into_iter()
            .find(|f| f.name == ctor)
            .unwrap();
        let compact: String = f.body.chars().filter(|c| !c.is_whitespace()).collect();
        let chain = &compact[compact.find("RouteMethod::new()").unwrap()..];
        let mut out = Vec::new();
        for method in ["get", "post", "put", "patch", "delete"] {
            if let Some(at) = chain.find(&format!(".{method}(")) {
                let rest = &chain[at + method.len() + 2..];
                let name = &rest[..rest.find(')').unwrap()];
                out.push((method.to_ascii_uppercase(), in_module(module, name)));
            }
        }
        return out;
    }
    let binding = format!("let{target}=");
    let at = routes.find(&binding).unwrap() + binding.len();
    let expr = &routes[at..at + routes[at..].find(';').unwrap()];
    vec![("GET".to_string(), Handler::Expr(expr.to_string()))]
}

/// The table as committed.
fn routes_markdown() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let api = sources(&root, "api");
    let service = sources(&root, "service");
    let index = core_methods(&service);
    let spec: Value = serde_json::from_str(&portcullis::api::spec_json()).unwrap();
    let mut rows = spec_rows(&api, &index, &spec);
    rows.extend(other_rows(&api, &index));
    rows.sort_by_key(order);
    let mut out = String::from(
        "# Routes\n\n\
         Every route the server mounts: its method and path, how a caller \
         authenticates, the handler that serves it (in `src/`) and the use \
         cases it calls, the methods of the one `Core` (in `src/service/`). \
         Generated from the code by `tests/api/routes_table.rs`; do not edit \
         by hand: `UPDATE_ROUTES=1 cargo test --test api routes` rewrites \
         it, and `cargo test` fails while it is stale. `HEAD` is answered \
         wherever `GET` is. Paths and bodies in detail: \
         [`openapi/openapi.json`](../openapi/openapi.json).\n\n\
         | Method | Path | Auth | Handler | Use case |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    for r in &rows {
        writeln!(
            out,
            "| {} | `{}` | {} | {} | {} |",
            r.method, r.path, r.auth, r.handler, r.use_case
        )
        .unwrap();
    }
    out
}

#[test]
fn committed_routes_table_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/routes.md");
    let current = routes_markdown();
    if std::env::var_os("UPDATE_ROUTES").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &current).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "docs/routes.md is stale: run `UPDATE_ROUTES=1 cargo test --test api routes`"
    );
}

#[test]
fn every_route_names_its_handler_and_its_use_cases() {
    let table = routes_markdown();
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Method") && !l.starts_with("| ---"))
        .collect();
    // The spec's operations and the routes beside it.
    let spec: Value = serde_json::from_str(&portcullis::api::spec_json()).unwrap();
    let operations: usize = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|ops| ops.as_object().unwrap().len())
        .sum();
    assert!(rows.len() > operations, "{table}");
    for row in &rows {
        assert!(
            row.contains(".rs"),
            "a row without its handler's file: {row}"
        );
    }
    // An API handler that reaches no use case is rare; each is listed here.
    let none: Vec<&&str> = rows
        .iter()
        .filter(|r| r.ends_with("| none |") && r.contains("Api::"))
        .collect();
    assert!(none.len() <= 8, "{none:#?}");
}
