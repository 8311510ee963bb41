//! The book's two references are generated from the code, and these tests
//! fail when the committed pages drift from it (like the OpenAPI check):
//!
//! - `docs/reference/configuration.md`: every key of `KNOWN_KEYS`, with its
//!   default and meaning read from the settings code (`src/config/`): the
//!   field doc comments that start with the key, and the default literals of
//!   `get_or("KEY", "default")`-style calls.
//! - `docs/reference/errors.md`: every problem slug of `api::PROBLEMS` (the
//!   `/problems/<slug>` pages), and a check that every slug the code answers
//!   with (`Problem::new(.., "slug", ..)` under `src/`) is among them.
//!
//! Each page keeps its prose; only the part between
//! `<!-- generated:begin -->` and `<!-- generated:end -->` is generated.
//! Regenerate with `UPDATE_DOCS=1 cargo test --test api docs_reference`.

use std::path::{Path, PathBuf};

const BEGIN: &str = "<!-- generated:begin -->";
const END: &str = "<!-- generated:end -->";

/// Keys the settings structs do not hold (read elsewhere), with their meaning.
const OTHER_KEYS: &[(&str, &str, &str)] = &[
    (
        "PORTCULLIS_CONFIG",
        "`./portcullis.toml` when it exists",
        "path of the optional TOML file with the same keys (`PORTCULLIS_LISTEN = \"...\"` or `listen = \"...\"`); the environment wins over it",
    ),
    (
        "PORTCULLIS_ADMIN_PASSWORD",
        "unset (one line on stdin)",
        "password of the account `portcullis admin create EMAIL` creates",
    ),
];

/// The settings files, in the order their groups appear in the reference.
/// The files of `src/config/` that declare settings (every one but the
/// parser, the list of known keys and the tests), sorted.
fn config_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("src/config"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| {
            f.ends_with(".rs") && !["keys.rs", "parse.rs", "tests.rs"].contains(&f.as_str())
        })
        .map(|f| format!("src/config/{f}"))
        .collect();
    files.sort();
    files
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// One documented key.
struct Key {
    key: String,
    group: String,
    default: String,
    meaning: String,
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The doc comment's text after the key: "`KEY`: meaning" → "meaning".
fn meaning_of(doc: &str, key: &str) -> String {
    let rest = doc.trim_start_matches(&format!("`{key}`")).trim_start();
    let rest = rest.strip_prefix(':').unwrap_or(rest).trim();
    let mut m = rest.to_string();
    if let Some(first) = m.get(..1) {
        m = first.to_uppercase() + &m[1..];
    }
    m
}

/// The literal default of `KEY` in the settings code: the argument after
/// the key in calls such as `get_or("KEY", "15m")` or `number("KEY", 5)`.
fn literal_default(code: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\",");
    let at = code.find(&needle)? + needle.len();
    let rest = code[at..].trim_start();
    let end = rest.find(')')?;
    let arg = rest[..end].trim().trim_end_matches(',').trim();
    if arg.is_empty() || arg.contains('(') {
        return None;
    }
    Some(format!("`{}`", arg.trim_matches('"')))
}

/// A "(default X)" in the doc text.
fn doc_default(meaning: &str) -> Option<String> {
    let at = meaning
        .find("(default ")
        .or_else(|| meaning.find("(default:"))?;
    let rest = &meaning[at + "(default".len()..];
    let end = rest.find(')')?;
    let d = rest[..end].trim().trim_start_matches(':').trim();
    (!d.is_empty()).then(|| d.to_string())
}

fn config_keys() -> Vec<Key> {
    let sources: Vec<(String, String)> = config_files()
        .iter()
        .map(|f| (f.clone(), read(f)))
        .collect();
    let all_code: String = sources.iter().map(|(_, s)| s.as_str()).collect();
    let mut keys = Vec::new();
    for (_, text) in &sources {
        let mut doc: Vec<String> = Vec::new();
        let mut group: Option<String> = None;
        for line in text.lines() {
            let t = line.trim();
            if let Some(d) = t.strip_prefix("///") {
                doc.push(d.trim().to_string());
                continue;
            }
            if t.starts_with("#[") {
                continue;
            }
            if let Some(name) = t.strip_prefix("pub struct ").filter(|_| t.ends_with('{')) {
                let joined = doc.join(" ");
                let first = joined.split(". ").next().unwrap_or_default();
                let title = first.trim_end_matches('.').trim_start_matches("The ");
                group = Some(if name.starts_with("Settings ") {
                    "Logs".to_string()
                } else {
                    title.to_string()
                });
            } else if t == "}" {
                group = None;
            } else if let (Some(g), true) = (&group, t.starts_with("pub ") && t.contains(':')) {
                let text = doc.join(" ");
                let key = text
                    .strip_prefix("`PORTCULLIS_")
                    .and_then(|rest| rest.split_once('`'))
                    .map(|(name, _)| format!("PORTCULLIS_{name}"))
                    .filter(|k| {
                        k.chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    });
                if let Some(key) = key {
                    let meaning = meaning_of(&text, &key);
                    let ty = t.split_once(':').unwrap().1.trim();
                    let default = literal_default(&all_code, &key)
                        .or_else(|| doc_default(&meaning))
                        .unwrap_or_else(|| {
                            if ty.starts_with("Option<") || ty.starts_with("Vec<") {
                                "unset".to_string()
                            } else {
                                "see meaning".to_string()
                            }
                        });
                    keys.push(Key {
                        key,
                        group: g.clone(),
                        default,
                        meaning,
                    });
                }
            }
            doc.clear();
        }
    }
    for (key, default, meaning) in OTHER_KEYS {
        keys.push(Key {
            key: key.to_string(),
            group: "Files and the command line".to_string(),
            default: default.to_string(),
            meaning: meaning.to_string(),
        });
    }
    keys
}

fn configuration_table() -> String {
    let keys = config_keys();
    for known in portcullis::config::KNOWN_KEYS {
        let n = keys.iter().filter(|k| k.key == *known).count();
        assert!(
            n == 1,
            "{known} is documented {n} times in src/config/ (want once: a `/// `{known}`: meaning` doc comment on its settings field)"
        );
    }
    for k in &keys {
        assert!(
            portcullis::config::KNOWN_KEYS.contains(&k.key.as_str()),
            "{} is documented in src/config/ but missing from KNOWN_KEYS",
            k.key
        );
    }
    let mut out = String::new();
    let mut group = "";
    for k in &keys {
        if k.group != group {
            group = &k.group;
            let mut title = group.to_string();
            if let Some(first) = title.get(..1) {
                title = first.to_uppercase() + &title[1..];
            }
            out.push_str(&format!(
                "\n### {title}\n\n| key | default | meaning |\n|---|---|---|\n"
            ));
        }
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            k.key,
            cell(&k.default),
            cell(&k.meaning)
        ));
    }
    out
}

/// Every slug named in a `Problem::new(status, "slug", ...)` call under `src/`.
fn slugs_in_code() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("src"), &mut files);
    let mut slugs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("Problem::new(") {
            rest = &rest[at + "Problem::new(".len()..];
            let args = &rest[..rest.find(';').unwrap_or(rest.len()).min(400)];
            // The slug is the second argument when it is a literal (a
            // variable slug, as for federation refusals, is listed where
            // its literals are).
            let second = args.split_once(',').map(|(_, r)| r.trim_start());
            if let Some((slug, _)) = second
                .and_then(|r| r.strip_prefix('"'))
                .and_then(|s| s.split_once('"'))
            {
                slugs.push(slug.to_string());
            }
        }
    }
    slugs.sort();
    slugs.dedup();
    slugs
}

fn errors_table() -> String {
    let problems = portcullis::api::PROBLEMS;
    for slug in slugs_in_code() {
        assert!(
            problems.iter().any(|p| p.0 == slug),
            "the code answers with the problem slug {slug:?}, which is missing from PROBLEMS (src/api/problem_pages.rs)"
        );
    }
    let mut rows: Vec<_> = problems.iter().collect();
    rows.sort_by_key(|p| (p.1, p.0));
    let mut out = String::from("\n| slug | status | title | meaning |\n|---|---|---|---|\n");
    for (slug, status, title, text) in rows {
        out.push_str(&format!(
            "| `{slug}` | {status} | {} | {} |\n",
            cell(title),
            cell(text)
        ));
    }
    out
}

/// Replaces the generated part of `rel` with `generated`; the page as it
/// should be.
fn regenerate(rel: &str, generated: &str) -> (String, String) {
    let committed = read(rel);
    let (Some(b), Some(e)) = (committed.find(BEGIN), committed.find(END)) else {
        panic!("{rel} lacks the {BEGIN} / {END} markers");
    };
    let wanted = format!(
        "{}{BEGIN}\n<!-- Generated by tests/api/docs_reference.rs: do not edit by hand. -->\n{generated}\n{}",
        &committed[..b],
        &committed[e..]
    );
    (committed, wanted)
}

fn check(rel: &str, generated: &str) {
    let (committed, wanted) = regenerate(rel, generated);
    if std::env::var_os("UPDATE_DOCS").is_some() && committed != wanted {
        std::fs::write(root().join(rel), &wanted).unwrap();
        return;
    }
    assert!(
        committed == wanted,
        "{rel} is stale: run `UPDATE_DOCS=1 cargo test --test api docs_reference`"
    );
}

#[test]
fn configuration_reference_matches_the_settings_code() {
    check("docs/reference/configuration.md", &configuration_table());
}

#[test]
fn error_reference_matches_the_problem_slugs() {
    check("docs/reference/errors.md", &errors_table());
}

#[test]
fn the_generators_read_what_they_claim() {
    // Spot checks against values the code itself uses, so a parser that
    // silently reads nothing (or the wrong argument) fails here.
    let keys = config_keys();
    let get = |k: &str| keys.iter().find(|x| x.key == k).unwrap();
    assert_eq!(get("PORTCULLIS_LISTEN").default, "`127.0.0.1:8080`");
    assert_eq!(get("PORTCULLIS_ACCESS_TTL").default, "`15m`");
    assert_eq!(get("PORTCULLIS_DETECT_ACCOUNT_FAILURES").default, "`5`");
    assert_eq!(get("PORTCULLIS_SMTP_URL").default, "unset");
    assert!(get("PORTCULLIS_CAPTCHA").meaning.contains("on-failures"));
    let defaults =
        portcullis::config::Settings::from_map(&std::collections::BTreeMap::new()).unwrap();
    assert_eq!(
        get("PORTCULLIS_MAX_SESSIONS").default,
        format!("`{}`", defaults.limits.max_sessions)
    );
    assert_eq!(
        get("PORTCULLIS_AVATAR_MAX_BYTES").default,
        format!("`{}`", defaults.avatars.max_bytes)
    );
    let slugs = slugs_in_code();
    assert!(slugs.contains(&"validation".to_string()) && slugs.len() >= 20);
}
