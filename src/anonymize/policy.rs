//! Anonymization policies: one TOML file per source giving, for every column of every
//! table, the rule that rewrites its values in anonymized backups.
//!
//! Three steps, the first pure:
//!
//! 1. [`Policy::load`] parses a file; every problem (unknown key, unknown rule, bad
//!    locale, a table not named `"schema.table"`) is reported with its line, e.g.
//!    `policy policies/billing.toml:12: column "email" of public.clients: unknown rule …`.
//! 2. [`check`] compares a policy with the schema of the live database and fails closed:
//!    a table or column of the database without a rule, a rule naming a table or column
//!    the database does not have, a rule that cannot produce values of its column's
//!    type, are all errors. Kept columns whose name looks personal are warnings.
//! 3. [`init`] writes a starting policy for a schema, with a suggested rule per column.
//!
//! See `policies/README.md` for the file format and the rules.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use toml::de::DeTable;

use super::rules::{Locale, RULE_NAMES, Rule};
use super::schema::{ColumnInfo, Dialect, SchemaInfo, TableSchema, TypeKind};
use crate::config::did_you_mean;
use crate::config::locate::{LineIndex, Locations};
use crate::config::parse::syntax_problem;
use crate::config::{Problem, read_small_text};
use crate::erasure::rules::ErasureRules;

/// The largest policy file [`Policy::load`] reads.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The key of a table's default rule: every column not listed gets it.
pub const DEFAULT_KEY: &str = "*";

const TOP_KEYS: &[&str] = &["locale", "tables", "erasure"];
const LOCALES: &[&str] = &["fr_FR", "en"];

/// A loaded policy: the rule of every listed column of every listed table.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The file it was loaded from, as given.
    pub file: PathBuf,
    /// The language of fake names, addresses and phone numbers.
    pub locale: Locale,
    /// By `schema.table` (`main.table` for SQLite).
    pub tables: BTreeMap<String, TablePolicy>,
    /// SHA-256 of the file's bytes, lowercase hex: which policy made a backup.
    pub sha256: String,
    /// `[erasure]`: what erasing one subject means (see [`crate::erasure::rules`]).
    pub erasure: Option<ErasureRules>,
}

/// `[tables."schema.table"]`.
#[derive(Debug, Clone)]
pub struct TablePolicy {
    /// The line of the table's header.
    pub line: usize,
    /// `"*" = RULE`: the rule of every column not listed.
    pub default: Option<Rule>,
    /// The line of `"*"`, when there is one.
    pub default_line: Option<usize>,
    /// Rules by column name.
    pub columns: BTreeMap<String, ColumnRule>,
}

/// `column = RULE`.
#[derive(Debug, Clone)]
pub struct ColumnRule {
    pub rule: Rule,
    pub line: usize,
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("policy {}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is wrong; one line of the message per problem, in file order.
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

fn render_problems(file: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| located(file, p.line, &p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `policy FILE:LINE: message`, or `policy FILE: message`.
fn located(file: &Path, line: Option<usize>, message: &str) -> String {
    match line {
        Some(line) => format!("policy {}:{line}: {message}", file.display()),
        None => format!("policy {}: {message}", file.display()),
    }
}

impl Policy {
    /// Reads and parses a policy file (pure: nothing but the file is read).
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let read_error = |source| PolicyError::Read {
            file: path.to_path_buf(),
            source,
        };
        let text = read_small_text(path, MAX_FILE_BYTES, "policy").map_err(read_error)?;
        Policy::from_str_at(&text, path)
    }

    /// Parses policy text; `path` names it in messages and is kept as [`Policy::file`].
    pub fn from_str_at(text: &str, path: &Path) -> Result<Policy, PolicyError> {
        let invalid = |mut problems: Vec<Problem>| {
            problems.sort_by_key(|p| (p.line.is_none(), p.line));
            PolicyError::Invalid {
                file: path.to_path_buf(),
                problems,
            }
        };
        let lines = LineIndex::new(text);
        let root: toml::Table =
            toml::from_str(text).map_err(|e| invalid(vec![syntax_problem(text, &lines, &e)]))?;
        let locations = DeTable::parse(text)
            .map(|doc| Locations::from_document(doc.get_ref(), &lines))
            .unwrap_or_default();
        let mut parser = Parser {
            at: &locations,
            problems: Vec::new(),
        };
        let (locale, tables) = parser.document(&root);
        let erasure = root.get("erasure").and_then(|value| {
            crate::erasure::rules::parse(value, &locations, &mut parser.problems)
        });
        match locale {
            Some(locale) if parser.problems.is_empty() => Ok(Policy {
                file: path.to_path_buf(),
                locale,
                tables,
                sha256: hex::encode(Sha256::digest(text.as_bytes())),
                erasure,
            }),
            _ => Err(invalid(parser.problems)),
        }
    }

    /// The policy of table `schema.table`.
    pub fn table(&self, schema: &str, table: &str) -> Option<&TablePolicy> {
        self.tables.get(&format!("{schema}.{table}"))
    }

    /// The rule of a column: its own, else the table default; `None` if neither
    /// ([`check`] reports it).
    pub fn rule_for(&self, schema: &str, table: &str, column: &str) -> Option<&Rule> {
        let table = self.table(schema, table)?;
        table
            .columns
            .get(column)
            .map(|c| &c.rule)
            .or(table.default.as_ref())
    }
}

struct Parser<'a> {
    at: &'a Locations,
    problems: Vec<Problem>,
}

impl Parser<'_> {
    fn report(&mut self, line: Option<usize>, message: String) {
        self.problems.push(Problem { line, message });
    }

    fn document(&mut self, root: &toml::Table) -> (Option<Locale>, BTreeMap<String, TablePolicy>) {
        let mut locale = None;
        let mut tables = BTreeMap::new();
        for (key, value) in root {
            let line = self.at.line(&[key]);
            match key.as_str() {
                "locale" => locale = self.locale(value, line),
                "erasure" => {} // parsed by crate::erasure::rules
                "tables" => match value.as_table() {
                    Some(t) => tables = self.tables(t),
                    None => self.report(
                        line,
                        format!(
                            "tables must be a table, not {}: write one [tables.\"schema.table\"] \
                             header per table, followed by its columns",
                            value.type_str()
                        ),
                    ),
                },
                other => {
                    let mut message = format!(
                        "unknown key {other:?} at the top level (expected one of: {}",
                        TOP_KEYS.join(", ")
                    );
                    if let Some(close) = did_you_mean(other, TOP_KEYS.iter().copied()) {
                        let _ = write!(message, "; did you mean {close:?}?");
                    }
                    message.push(')');
                    self.report(line, message);
                }
            }
        }
        if !root.contains_key("locale") {
            self.report(
                None,
                "missing key \"locale\": add locale = \"fr_FR\" (or \"en\") at the top, \
                 before the first [tables.…] header"
                    .to_owned(),
            );
        }
        (locale, tables)
    }

    fn locale(&mut self, value: &toml::Value, line: Option<usize>) -> Option<Locale> {
        let Some(text) = value.as_str() else {
            self.report(
                line,
                format!(
                    "locale must be a string, not {}: locale = \"fr_FR\" or \"en\"",
                    value.type_str()
                ),
            );
            return None;
        };
        match text.parse::<Locale>() {
            Ok(locale) => Some(locale),
            Err(why) => {
                let mut message = why;
                if let Some(close) = did_you_mean(text, LOCALES.iter().copied()) {
                    let _ = write!(message, " (did you mean {close:?}?)");
                }
                self.report(line, message);
                None
            }
        }
    }

    fn tables(&mut self, tables: &toml::Table) -> BTreeMap<String, TablePolicy> {
        let mut out = BTreeMap::new();
        for (name, value) in tables {
            let line = self.at.line(&["tables", name]);
            let Some(columns) = value.as_table() else {
                self.report(
                    line,
                    format!(
                        "tables.{} must be a table of column = rule, not {}: write \
                         [tables.{}] on a line of its own followed by its columns",
                        toml_string(name),
                        value.type_str(),
                        toml_string(name)
                    ),
                );
                continue;
            };
            if !is_qualified(name) {
                self.report(line, unqualified_message(name, columns));
                continue;
            }
            let mut table = TablePolicy {
                line: line.unwrap_or(0),
                default: None,
                default_line: None,
                columns: BTreeMap::new(),
            };
            for (column, value) in columns {
                let line = self.at.line(&["tables", name, column]);
                match Rule::from_toml(value) {
                    Ok(rule) if column == DEFAULT_KEY => {
                        table.default = Some(rule);
                        table.default_line = line;
                    }
                    Ok(rule) => {
                        table.columns.insert(
                            column.clone(),
                            ColumnRule {
                                rule,
                                line: line.unwrap_or(0),
                            },
                        );
                    }
                    Err(e) => self.report(line, format!("{}: {e}", column_label(name, column))),
                }
            }
            out.insert(name.clone(), table);
        }
        out
    }
}

/// `schema.table`, both parts non-empty.
fn is_qualified(name: &str) -> bool {
    name.split_once('.')
        .is_some_and(|(schema, table)| !schema.is_empty() && !table.is_empty())
}

/// Why `[tables.clients]` or `[tables.public.clients]` is not a table name, and the fix.
fn unqualified_message(name: &str, columns: &toml::Table) -> String {
    // `[tables.public.clients]` without quotes is a table `public` holding tables.
    let nested = !columns.is_empty() && columns.values().all(toml::Value::is_table);
    match columns.keys().next() {
        Some(inner) if nested => format!(
            "table names are \"schema.table\" in quotes: write [tables.{}], not \
             [tables.{name}.{inner}]",
            toml_string(&format!("{name}.{inner}"))
        ),
        _ => format!(
            "table {name:?} is not \"schema.table\": write [tables.{}] \
             (for SQLite sources the schema is \"main\": [tables.{}])",
            toml_string(&format!("public.{name}")),
            toml_string(&format!("main.{name}"))
        ),
    }
}

/// `column "email" of public.clients`, or `default "*" of public.clients`.
fn column_label(table: &str, column: &str) -> String {
    if column == DEFAULT_KEY {
        format!("default \"*\" of {table}")
    } else {
        format!("column {column:?} of {table}")
    }
}

/// What [`check`] found: errors make the policy unusable; warnings ask for a review.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Each starts `policy FILE:LINE: ` (or `policy FILE: `), in file order.
    pub errors: Vec<String>,
    /// Same form.
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// True when there are no errors (warnings do not count).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Messages with their line, sorted into file order at the end.
#[derive(Default)]
struct Findings(Vec<(Option<usize>, String)>);

impl Findings {
    fn push(&mut self, line: Option<usize>, message: String) {
        self.0.push((line, message));
    }

    fn render(mut self, file: &Path) -> Vec<String> {
        self.0.sort_by_key(|&(line, _)| (line.is_none(), line));
        self.0
            .iter()
            .map(|(line, message)| located(file, *line, message))
            .collect()
    }
}

/// Compares a policy with the schema of its database. Fails closed: every table and
/// every (non-generated) column of the database must have a rule, its own or its
/// table's `"*"`; every table and column the policy names must exist; and each rule
/// must be able to produce values the column accepts. Kept columns whose name looks
/// like personal data are warnings.
pub fn check(policy: &Policy, schema: &SchemaInfo) -> CheckReport {
    let mut errors = Findings::default();
    let mut warnings = Findings::default();
    let names: Vec<String> = schema.tables.iter().map(TableSchema::qualified).collect();
    let by_name: BTreeMap<&str, &TableSchema> = names
        .iter()
        .map(String::as_str)
        .zip(&schema.tables)
        .collect();
    for (key, table_policy) in &policy.tables {
        match by_name.get(key.as_str()) {
            Some(table) => check_table(
                table_policy,
                table,
                schema.dialect,
                &mut errors,
                &mut warnings,
            ),
            None => errors.push(
                Some(table_policy.line),
                format!(
                    "table {key} is not in the database{}",
                    nearest_table(key, schema, &names)
                ),
            ),
        }
    }
    for (table, name) in schema.tables.iter().zip(&names) {
        if !policy.tables.contains_key(name) {
            let columns = if table.columns.is_empty() {
                "(it has no columns)".to_owned()
            } else {
                "with a rule for each column, or \"*\" = \"keep\" after review".to_owned()
            };
            errors.push(
                None,
                format!(
                    "table {name} is not in the policy: add [tables.{}] {columns}",
                    toml_string(name)
                ),
            );
        }
    }
    if let Some(rules) = &policy.erasure {
        for (line, message) in crate::erasure::rules::check(rules, schema) {
            errors.push(line, message);
        }
    }
    CheckReport {
        errors: errors.render(&policy.file),
        warnings: warnings.render(&policy.file),
    }
}

/// ` (did you mean "public.clients"?)`: a typo, or the same table in another schema.
fn nearest_table(key: &str, schema: &SchemaInfo, names: &[String]) -> String {
    let same_name = key
        .split_once('.')
        .and_then(|(_, table)| schema.tables.iter().find(|t| t.name == table))
        .map(TableSchema::qualified);
    let close = same_name
        .or_else(|| did_you_mean(key, names.iter().map(String::as_str)).map(str::to_owned));
    match close {
        Some(close) => format!(" (did you mean {close:?}?)"),
        None if schema.dialect == Dialect::Sqlite && !key.starts_with("main.") => {
            " (SQLite tables are \"main.table\")".to_owned()
        }
        None if schema.dialect == Dialect::Mysql => {
            " (MySQL tables are \"database.table\", the database of the source's url)".to_owned()
        }
        None => String::new(),
    }
}

fn check_table(
    policy: &TablePolicy,
    table: &TableSchema,
    dialect: Dialect,
    errors: &mut Findings,
    warnings: &mut Findings,
) {
    let name = table.qualified();
    for (column, rule) in &policy.columns {
        match table.column(column) {
            None => {
                let close = did_you_mean(column, table.columns.iter().map(|c| c.name.as_str()))
                    .map(|c| format!(" (did you mean {c:?}?)"))
                    .unwrap_or_default();
                errors.push(
                    Some(rule.line),
                    format!("column {column:?} is not in table {name}{close}"),
                );
            }
            Some(info) if info.generated => errors.push(
                Some(rule.line),
                format!(
                    "column {column:?} of {name} is generated by the database and is not in \
                     dumps: remove its rule"
                ),
            ),
            Some(_) => {}
        }
    }
    for column in table.columns.iter().filter(|c| !c.generated) {
        let (rule, line, by_default) = match policy.columns.get(&column.name) {
            Some(own) => (&own.rule, own.line, false),
            None => match &policy.default {
                Some(rule) => (rule, policy.default_line.unwrap_or(policy.line), true),
                None => {
                    errors.push(
                        Some(policy.line),
                        format!(
                            "column {:?} of {name} has no rule: add {} = \"RULE\" under \
                             [tables.{}] (\"keep\" only after review), or a \"*\" default",
                            column.name,
                            toml_key(&column.name),
                            toml_string(&name)
                        ),
                    );
                    continue;
                }
            },
        };
        let via = if by_default {
            format!("rule \"{}\" (from \"*\")", rule.name())
        } else {
            format!("rule \"{}\"", rule.name())
        };
        match fits(rule, column, dialect) {
            Ok(None) => {}
            Ok(Some(why)) => warnings.push(
                Some(line),
                format!("{via} on column {:?} of {name}: {why}", column.name),
            ),
            Err(why) => errors.push(
                Some(line),
                format!(
                    "{via} does not fit column {:?} of {name} ({}): {why}",
                    column.name,
                    type_label(column)
                ),
            ),
        }
        if keeps(rule)
            && let Some(word) = looks_personal(&column.name)
        {
            let how = if by_default { " by \"*\"" } else { "" };
            warnings.push(
                Some(line),
                format!(
                    "column {:?} of {name} is kept as is{how} but its name looks personal \
                     ({word:?}): check its values, or give it a rule",
                    column.name
                ),
            );
        }
    }
}

fn type_label(column: &ColumnInfo) -> &str {
    if column.data_type.is_empty() {
        "no declared type"
    } else {
        &column.data_type
    }
}

/// What a rule writes, for telling which column types can hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Makes {
    /// `keep`, `null`: whatever was there, or nothing.
    Same,
    Text,
    Date,
    Number,
    Ip,
    Json,
    Array,
}

/// Rule names not listed here make text (a rule added later is checked like text).
fn makes(rule_name: &str) -> Makes {
    match rule_name {
        "keep" | "null" => Makes::Same,
        "date_shift" => Makes::Date,
        "numeric_noise" => Makes::Number,
        "ip_address" => Makes::Ip,
        "json" => Makes::Json,
        "array" => Makes::Array,
        _ => Makes::Text,
    }
}

/// Whether a column of `kind` holds what a rule that `makes` writes. SQLite stores
/// dates, decimals, JSON documents and arrays (as JSON) in TEXT columns; MySQL has no
/// arrays (lists are JSON arrays) and MariaDB's JSON is a LONGTEXT.
fn holds(kind: &TypeKind, makes: Makes, dialect: Dialect) -> bool {
    let sqlite = dialect == Dialect::Sqlite;
    let json_in_text = sqlite || dialect == Dialect::Mysql;
    match makes {
        Makes::Same => true,
        _ if *kind == TypeKind::Any => true,
        Makes::Text => *kind == TypeKind::Text,
        Makes::Date => {
            matches!(kind, TypeKind::Date | TypeKind::Timestamp)
                || (sqlite && *kind == TypeKind::Text)
        }
        Makes::Number => {
            matches!(kind, TypeKind::Integer | TypeKind::Decimal)
                || (sqlite && *kind == TypeKind::Text)
        }
        Makes::Ip => matches!(kind, TypeKind::Inet | TypeKind::Text),
        Makes::Json => *kind == TypeKind::Json || (json_in_text && *kind == TypeKind::Text),
        Makes::Array => {
            matches!(kind, TypeKind::Array(_))
                || (json_in_text && matches!(kind, TypeKind::Text | TypeKind::Json))
        }
    }
}

/// Whether `rule` can write values `column` accepts: `Err(why)` when it cannot,
/// `Ok(Some(why))` when it might not.
fn fits(rule: &Rule, column: &ColumnInfo, dialect: Dialect) -> Result<Option<String>, String> {
    if *rule == Rule::Null && column.not_null {
        return Err(
            "the column is NOT NULL, so the restore would fail: use a rule that \
                    writes a value"
                .to_owned(),
        );
    }
    fits_kind(rule, &column.kind(dialect), dialect)?;
    if let (Some(max), Some(len)) = (max_chars(column, dialect), output_chars(rule))
        && len > max
    {
        return Err(format!(
            "it writes {len} characters and the column holds at most {max}, so the restore \
             would fail"
        ));
    }
    if column.unique && !rule.keeps_unique() {
        if let Rule::Redact { .. } = rule {
            return Err(
                "the column is UNIQUE and \"redact\" writes the same text on every \
                        row, so the restore would fail: use \"hmac\" (or \"null\" if the column \
                        accepts NULL)"
                    .to_owned(),
            );
        }
        return Ok(Some(format!(
            "the column is UNIQUE and \"{}\" rewrites only parts of each value: two rows \
             could become equal and fail the restore",
            rule.name()
        )));
    }
    Ok(None)
}

/// `n` of `character varying(n)` and `character(n)` (PostgreSQL), `varchar(n)` and
/// `char(n)` (MySQL in strict mode); SQLite does not enforce lengths.
fn max_chars(column: &ColumnInfo, dialect: Dialect) -> Option<usize> {
    let prefixes: &[&str] = match dialect {
        Dialect::Postgres => &["character varying(", "character("],
        Dialect::Mysql => &["varchar(", "char("],
        Dialect::Sqlite => return None,
    };
    let t = column.data_type.trim();
    prefixes
        .iter()
        .find_map(|prefix| t.strip_prefix(prefix))
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|n| n.parse().ok())
}

/// The length of every value a rule writes, for the rules where it does not depend on
/// the input (`siret`, `iban`, `bic`, `phone` keep the input's length or layout).
fn output_chars(rule: &Rule) -> Option<usize> {
    match rule {
        Rule::Redact { text } => Some(text.chars().count()),
        Rule::Hmac => Some(64),
        _ => None,
    }
}

fn fits_kind(rule: &Rule, kind: &TypeKind, dialect: Dialect) -> Result<(), String> {
    let name = rule.name();
    let what = makes(name);
    if !holds(kind, what, dialect) {
        let fitting: Vec<&str> = RULE_NAMES
            .iter()
            .copied()
            .filter(|n| holds(kind, makes(n), dialect))
            .collect();
        return Err(format!(
            "it writes {}, which this type cannot hold (rules that fit: {})",
            describe(what),
            fitting.join(", ")
        ));
    }
    if let (TypeKind::Array(inner), Rule::Array { element }) = (kind, rule) {
        return fits_kind(element, inner, dialect).map_err(|why| {
            format!(
                "its element rule \"{}\" does not fit: {why}",
                element.name()
            )
        });
    }
    Ok(())
}

fn describe(makes: Makes) -> &'static str {
    match makes {
        Makes::Same => "the value as is",
        Makes::Text => "text",
        Makes::Date => "dates",
        Makes::Number => "numbers",
        Makes::Ip => "IP addresses",
        Makes::Json => "JSON documents",
        Makes::Array => "arrays",
    }
}

/// Whether a rule leaves values as they are: `keep`, an `array` of `keep`, a `json`
/// that keeps every path and every other leaf.
fn keeps(rule: &Rule) -> bool {
    match rule {
        Rule::Keep => true,
        Rule::Array { element } => keeps(element),
        Rule::Json { paths, others } => paths.iter().all(|(_, r)| keeps(r)) && keeps(others),
        _ => false,
    }
}

/// Words of column names that say "personal data", in French and English. A name
/// matches when one of its words (split on `_`, digits and case changes) is one of
/// [`PERSONAL_WORDS`], or when it contains one of [`PERSONAL_PARTS`].
const PERSONAL_WORDS: &[&str] = &[
    "ip", "tel", "gsm", "fax", "mail", "rib", "bic", "nom", "name", "zip", "cp", "rue", "city",
    "ville", "note", "dob", "card", "cb", "pan", "nir", "age", "sexe", "sex", "gender", "genre",
];
const PERSONAL_PARTS: &[&str] = &[
    "email",
    "courriel",
    "telephone",
    "phone",
    "mobile",
    "portable",
    "iban",
    "swift",
    "prenom",
    "firstname",
    "lastname",
    "surname",
    "fullname",
    "adresse",
    "address",
    "street",
    "postcode",
    "postal",
    "naissance",
    "birth",
    "notes",
    "commentaire",
    "comment",
    "remarque",
    "useragent",
    "siret",
    "siren",
    "raisonsociale",
    "company",
    "societe",
    "entreprise",
    "details",
    "carte",
    "passport",
    "passeport",
    "password",
    "motdepasse",
    "secu",
    "latitude",
    "longitude",
    "geoloc",
];

/// The word that makes `column` look like personal data, if any.
pub fn looks_personal(column: &str) -> Option<&'static str> {
    let words = name_words(column);
    if let Some(word) = PERSONAL_WORDS
        .iter()
        .find(|w| words.iter().any(|word| word == *w))
    {
        return Some(word);
    }
    let joined: String = words.concat();
    PERSONAL_PARTS.iter().copied().find(|p| joined.contains(p))
}

/// `dateNaissance2` → `["date", "naissance"]`; accents dropped, lowercase.
fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        let c = fold_accent(c);
        if !c.is_alphabetic() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        previous_lower = c.is_lowercase();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn fold_accent(c: char) -> char {
    match c {
        'à' | 'â' | 'ä' | 'á' => 'a',
        'À' | 'Â' | 'Ä' | 'Á' => 'A',
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'É' | 'È' | 'Ê' | 'Ë' => 'E',
        'î' | 'ï' | 'í' => 'i',
        'Î' | 'Ï' | 'Í' => 'I',
        'ô' | 'ö' | 'ó' => 'o',
        'Ô' | 'Ö' | 'Ó' => 'O',
        'ù' | 'û' | 'ü' | 'ú' => 'u',
        'Ù' | 'Û' | 'Ü' | 'Ú' => 'U',
        'ç' => 'c',
        'Ç' => 'C',
        other => other,
    }
}

/// A suggested rule: its TOML value and, when it is not `keep`, why.
struct Suggestion {
    toml: String,
    why: Option<String>,
}

impl Suggestion {
    fn keep() -> Self {
        Suggestion {
            toml: "\"keep\"".to_owned(),
            why: None,
        }
    }
}

/// The rule a column's name suggests, if any.
fn rule_by_name(column: &str) -> Option<&'static str> {
    let words = name_words(column);
    let joined = words.concat();
    let has = |w: &str| words.iter().any(|word| word == w);
    let part = |p: &str| joined.contains(p);
    // Most specific first: "adresse_ip" is an IP address, "email_facturation" an e-mail.
    let found = if has("ip") || part("ipaddress") {
        "ip_address"
    } else if part("useragent") {
        "user_agent"
    } else if part("email") || part("courriel") || has("mail") {
        "email"
    } else if part("telephone") || part("phone") || part("mobile") || has("tel") || has("gsm") {
        "phone"
    } else if part("iban") {
        "iban"
    } else if has("bic") || part("swift") {
        "bic"
    } else if part("siret") {
        "siret"
    } else if part("siren") {
        "siren"
    } else if part("raisonsociale") || part("company") || part("societe") {
        "company"
    } else if part("prenom") || part("firstname") || (has("first") && has("name")) {
        "first_name"
    } else if part("fullname") || part("nomcomplet") {
        "full_name"
    } else if has("nom") || part("lastname") || part("surname") || (has("last") && has("name")) {
        "last_name"
    } else if part("codepostal") || part("postcode") || part("postalcode") || has("zip") {
        "postcode"
    } else if has("ville") || has("city") || has("commune") {
        "city"
    } else if part("adresse") || part("address") || has("rue") || part("street") {
        "street_address"
    } else if part("naissance") || part("birth") || has("dob") {
        "date_shift"
    } else if part("notes")
        || has("note")
        || part("comment")
        || part("description")
        || part("remarque")
    {
        "scrub"
    } else {
        return None;
    };
    Some(found)
}

/// Why [`init`] suggests `rule`: one comment line.
fn reason(rule: &str) -> &'static str {
    match rule {
        "ip_address" => "an IP address: a fake one of the same family",
        "user_agent" => "a browser string, which can single a person out: a common one instead",
        "email" => "an e-mail address: a fake one, the same for one address in every table",
        "phone" => "a phone number: fake digits in the same layout",
        "iban" => "a bank account: a fake IBAN with valid check digits",
        "bic" => "a bank code, which with an IBAN points at an account",
        "siret" | "siren" => "a company number (a sole trader's identifies a person)",
        "company" => "a company name (a sole trader's is their own name)",
        "first_name" => "a first name",
        "full_name" => "a person's full name",
        "last_name" => "a last name",
        "postcode" => "a postcode, part of an address",
        "city" => "a city, part of an address",
        "street_address" => "a street address",
        "date_shift" => "a birth date: moved by up to 180 days, ages stay about right",
        "scrub" => "free text: e-mails, phones, IBANs and card numbers inside get fakes",
        _ => "the name looks personal",
    }
}

/// The rule [`init`] writes for a column: one its name or type suggests, if it fits
/// the column (checked the way [`check`] will), else `keep`.
fn suggest(column: &ColumnInfo, dialect: Dialect) -> Suggestion {
    let kind = column.kind(dialect);
    let by_name = rule_by_name(&column.name);
    let (toml, why) = match (&kind, by_name) {
        (TypeKind::Json, _) => (
            "{ rule = \"json\", paths = {}, others = \"scrub\" }".to_owned(),
            format!(
                "{}: list the key paths holding personal data in paths, e.g.\n\
                 # paths = {{ \"email\" = \"email\", \"client.nom\" = \"last_name\" }};\n\
                 # others = \"scrub\" gives fakes to e-mails, phones and IBANs in other strings",
                type_label(column)
            ),
        ),
        (TypeKind::Array(inner), _) => {
            let element = by_name
                .filter(|rule| holds(inner, makes(rule), dialect) && *rule != "date_shift")
                .unwrap_or("keep");
            let each = if element == "keep" {
                "each element is kept: change element if they hold personal data".to_owned()
            } else {
                format!("each element gets \"{element}\"")
            };
            (
                format!("{{ rule = \"array\", element = {} }}", toml_string(element)),
                format!("{}: {each}", type_label(column)),
            )
        }
        (TypeKind::Inet, _) => ("\"ip_address\"".to_owned(), reason("ip_address").to_owned()),
        (_, Some("date_shift")) => (
            "{ rule = \"date_shift\", days = 180 }".to_owned(),
            reason("date_shift").to_owned(),
        ),
        (_, Some(rule)) => (toml_string(rule), reason(rule).to_owned()),
        (_, None) => return Suggestion::keep(),
    };
    let parsed = toml::from_str::<toml::Table>(&format!("r = {toml}"))
        .map_err(|e| e.to_string())
        .and_then(|t| t.get("r").map_or(Err(String::new()), Rule::from_toml));
    match parsed.map(|rule| (fits(&rule, column, dialect), rule)) {
        Ok((Ok(None), _)) => Suggestion {
            toml,
            why: Some(why),
        },
        Ok((Ok(Some(_)) | Err(_), rule)) => Suggestion {
            toml: "\"keep\"".to_owned(),
            why: Some(format!(
                "the name suggests \"{}\" but the column is {}{}: kept, review it",
                rule.name(),
                type_label(column),
                if column.unique { " and UNIQUE" } else { "" }
            )),
        },
        Err(_) => Suggestion::keep(),
    }
}

/// A starting policy for `schema`: every table, every column, with a rule suggested by
/// the column's name and type, and a comment saying why for each rule that is not
/// `keep`. It parses and passes [`check`] against the same schema; review it before use.
pub fn init(schema: &SchemaInfo, locale: Locale) -> String {
    let mut out = String::new();
    out.push_str(
        "# Anonymization policy written by `coffre policy init`: a starting point to review.\n\
         # Every column of every table needs a rule; \"keep\" copies values as they are.\n\
         # Check it against the database with `coffre policy check SOURCE`.\n\
         # Rules and format: policies/README.md in coffre's sources.\n",
    );
    let _ = writeln!(out, "locale = \"{}\"", locale.as_str());
    for table in &schema.tables {
        let _ = writeln!(out, "\n[tables.{}]", toml_string(&table.qualified()));
        if table.columns.is_empty() {
            out.push_str("# (no columns)\n");
        }
        for column in &table.columns {
            let key = toml_key(&column.name);
            if column.generated {
                let _ = writeln!(
                    out,
                    "# {key}: generated by the database, not in dumps: no rule"
                );
                continue;
            }
            let suggestion = suggest(column, schema.dialect);
            if let Some(why) = &suggestion.why {
                let _ = writeln!(out, "# {why}");
            }
            let _ = writeln!(out, "{key} = {}", suggestion.toml);
        }
    }
    out
}

/// A TOML basic string: `"public.clients"`.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A TOML key: bare when it can be, quoted otherwise.
fn toml_key(s: &str) -> String {
    let bare = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { s.to_owned() } else { toml_string(s) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: &str = "policies/test.toml";

    fn parse(text: &str) -> Result<Policy, String> {
        Policy::from_str_at(text, Path::new(AT)).map_err(|e| e.to_string())
    }

    fn problems(text: &str) -> Vec<String> {
        parse(text)
            .expect_err("must fail")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn column(name: &str, data_type: &str) -> ColumnInfo {
        ColumnInfo {
            name: name.to_owned(),
            data_type: data_type.to_owned(),
            unique: false,
            not_null: false,
            generated: false,
        }
    }

    /// public.clients and public.lignes, like the billing fixture, plus oddities.
    fn schema() -> SchemaInfo {
        SchemaInfo {
            dialect: Dialect::Postgres,
            tables: vec![
                TableSchema {
                    schema: "public".to_owned(),
                    name: "clients".to_owned(),
                    columns: vec![
                        ColumnInfo {
                            unique: true,
                            not_null: true,
                            ..column("id", "bigint")
                        },
                        ColumnInfo {
                            unique: true,
                            not_null: true,
                            ..column("email", "text")
                        },
                        column("telephone", "text"),
                        column("date_naissance", "date"),
                        column("tags", "text[]"),
                        column("details", "jsonb"),
                        column("ip", "inet"),
                        column("notes", "text"),
                        ColumnInfo {
                            generated: true,
                            ..column("nom_complet", "text")
                        },
                    ],
                },
                TableSchema {
                    schema: "public".to_owned(),
                    name: "lignes".to_owned(),
                    columns: vec![
                        column("id", "bigint"),
                        column("description", "text"),
                        column("Prix \"TTC\"", "numeric(12,2)"),
                    ],
                },
            ],
        }
    }

    const GOOD: &str = r#"locale = "fr_FR"
[tables."public.clients"]
id = "keep"
email = "email"
telephone = "phone"
date_naissance = { rule = "date_shift", days = 180 }
tags = { rule = "array", element = "keep" }
details = { rule = "json", paths = { "email" = "email" } }
ip = "ip_address"
notes = "scrub"
[tables."public.lignes"]
"*" = "keep"
description = "scrub"
"#;

    #[test]
    fn a_policy_parses_with_lines_defaults_and_digest() {
        let policy = parse(GOOD).expect("valid policy");
        assert_eq!(policy.file, Path::new(AT));
        assert_eq!(policy.locale, Locale::FrFr);
        assert_eq!(
            policy.tables.keys().collect::<Vec<_>>(),
            ["public.clients", "public.lignes"]
        );
        let clients = &policy.tables["public.clients"];
        assert_eq!(clients.line, 2);
        assert!(clients.default.is_none());
        assert_eq!(clients.columns["email"].line, 4);
        assert_eq!(clients.columns["email"].rule.name(), "email");
        let lignes = &policy.tables["public.lignes"];
        assert_eq!(lignes.default_line, Some(12));
        assert_eq!(
            policy.sha256,
            hex::encode(Sha256::digest(GOOD.as_bytes())),
            "digest of the file's bytes"
        );
        assert_eq!(policy.sha256.len(), 64);
    }

    #[test]
    fn rule_for_falls_back_to_the_table_default() {
        let policy = parse(GOOD).expect("valid policy");
        let rule = |s, t, c| policy.rule_for(s, t, c).map(Rule::name);
        assert_eq!(rule("public", "clients", "email"), Some("email"));
        assert_eq!(rule("public", "clients", "absent"), None, "no default");
        assert_eq!(rule("public", "lignes", "description"), Some("scrub"));
        assert_eq!(rule("public", "lignes", "quantite"), Some("keep"), "from *");
        assert_eq!(rule("public", "nowhere", "id"), None);
        assert_eq!(rule("other", "lignes", "id"), None);
    }

    #[test]
    fn unknown_top_key_names_line_and_fix() {
        let text = "locale = \"en\"\nlocal = \"fr_FR\"\n";
        assert_eq!(
            problems(text),
            [
                "policy policies/test.toml:2: unknown key \"local\" at the top level \
                 (expected one of: locale, tables, erasure; did you mean \"locale\"?)"
            ]
        );
    }

    #[test]
    fn unknown_rule_names_the_column_and_its_line() {
        let text = GOOD.replace("telephone = \"phone\"", "telephone = \"phnoe\"");
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "policy policies/test.toml:5: column \"telephone\" of public.clients: "
            ),
            "{found:?}"
        );
        assert!(found[0].contains("phnoe"), "{found:?}");
    }

    #[test]
    fn bad_locale_names_its_line() {
        let text = GOOD.replace("locale = \"fr_FR\"", "locale = \"fr_FX\"");
        assert_eq!(
            problems(&text),
            [
                "policy policies/test.toml:1: unknown locale \"fr_FX\"; valid locales: fr_FR, \
                 fr, en, en_US (did you mean \"fr_FR\"?)"
            ]
        );
        let text = GOOD.replace("locale = \"fr_FR\"", "locale = 33");
        assert!(
            problems(&text)[0].starts_with("policy policies/test.toml:1: locale must be a string")
        );
    }

    #[test]
    fn missing_locale_is_reported_without_a_line() {
        let found = problems("[tables.\"public.t\"]\nid = \"keep\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("policy policies/test.toml: missing key \"locale\""),
            "{found:?}"
        );
    }

    #[test]
    fn table_names_must_be_qualified() {
        let found = problems("locale = \"en\"\n[tables.clients]\nid = \"keep\"\n");
        assert_eq!(
            found,
            [
                "policy policies/test.toml:2: table \"clients\" is not \"schema.table\": write \
                 [tables.\"public.clients\"] (for SQLite sources the schema is \"main\": \
                 [tables.\"main.clients\"])"
            ]
        );
        let found = problems("locale = \"en\"\n[tables.public.clients]\nid = \"keep\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("write [tables.\"public.clients\"], not [tables.public.clients]"),
            "{found:?}"
        );
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let found = problems("locale = \"en\"\n[tables.\"public.t\"]\nid = keep\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("policy policies/test.toml:3: invalid toml"),
            "{found:?}"
        );
    }

    #[test]
    fn several_problems_come_in_file_order() {
        let text = "tables = 3\nlocale = \"de\"\n";
        let found = problems(text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("policy policies/test.toml:1: tables must be a table"));
        assert!(found[1].starts_with("policy policies/test.toml:2: unknown locale \"de\""));
    }

    #[test]
    fn load_reads_files_and_reports_missing_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.toml");
        std::fs::write(&path, GOOD).expect("write");
        let policy = Policy::load(&path).expect("valid policy");
        assert_eq!(policy.file, path);
        let err = Policy::load(Path::new("/nonexistent/p.toml"))
            .expect_err("must fail")
            .to_string();
        assert!(
            err.starts_with("policy /nonexistent/p.toml: cannot read: "),
            "{err}"
        );
    }

    #[test]
    fn a_complete_policy_passes_the_check() {
        let policy = parse(GOOD).expect("valid policy");
        let report = check(&policy, &schema());
        assert_eq!(report, CheckReport::default());
        assert!(report.is_ok());
    }

    #[test]
    fn check_finds_typos_missing_rules_and_tables() {
        let text = GOOD
            .replace("email = \"email\"", "emial = \"email\"")
            .replace("[tables.\"public.lignes\"]", "[tables.\"public.lines\"]");
        let policy = parse(&text).expect("valid policy");
        let report = check(&policy, &schema());
        assert_eq!(
            report.errors,
            [
                "policy policies/test.toml:2: column \"email\" of public.clients has no rule: \
                 add email = \"RULE\" under [tables.\"public.clients\"] (\"keep\" only after \
                 review), or a \"*\" default",
                "policy policies/test.toml:4: column \"emial\" is not in table public.clients \
                 (did you mean \"email\"?)",
                "policy policies/test.toml:11: table public.lines is not in the database \
                 (did you mean \"public.lignes\"?)",
                "policy policies/test.toml: table public.lignes is not in the policy: add \
                 [tables.\"public.lignes\"] with a rule for each column, or \"*\" = \"keep\" \
                 after review",
            ]
        );
    }

    #[test]
    fn generated_columns_need_no_rule_and_refuse_one() {
        let text = GOOD.replace(
            "notes = \"scrub\"",
            "notes = \"scrub\"\nnom_complet = \"keep\"",
        );
        let report = check(&parse(&text).expect("valid policy"), &schema());
        assert_eq!(
            report.errors,
            [
                "policy policies/test.toml:11: column \"nom_complet\" of public.clients is \
                 generated by the database and is not in dumps: remove its rule"
            ]
        );
    }

    #[test]
    fn rules_must_fit_the_column_type() {
        let text = GOOD
            .replace("id = \"keep\"", "id = \"email\"")
            .replace("telephone = \"phone\"", "telephone = \"date_shift\"")
            .replace(
                "tags = { rule = \"array\", element = \"keep\" }",
                "tags = { rule = \"array\", element = { rule = \"json\" } }",
            )
            .replace("ip = \"ip_address\"", "ip = { rule = \"json\" }")
            .replace(
                "notes = \"scrub\"",
                "notes = { rule = \"array\", element = \"keep\" }",
            )
            .replace("\"*\" = \"keep\"", "\"*\" = \"first_name\"");
        let text = text.replace(
            "telephone = \"date_shift\"",
            "telephone = { rule = \"date_shift\", days = 3 }",
        );
        let report = check(&parse(&text).expect("valid policy"), &schema());
        let errors = report.errors.join("\n");
        for expected in [
            ":3: rule \"email\" does not fit column \"id\" of public.clients (bigint): it \
             writes text, which this type cannot hold (rules that fit: keep, null, \
             numeric_noise)",
            ":5: rule \"date_shift\" does not fit column \"telephone\" of public.clients (text)",
            ":7: rule \"array\" does not fit column \"tags\" of public.clients (text[]): its \
             element rule \"json\" does not fit",
            ":9: rule \"json\" does not fit column \"ip\" of public.clients (inet)",
            ":10: rule \"array\" does not fit column \"notes\" of public.clients (text)",
            ":12: rule \"first_name\" (from \"*\") does not fit column \"id\" of public.lignes",
            ":12: rule \"first_name\" (from \"*\") does not fit column \"Prix \\\"TTC\\\"\" of \
             public.lignes (numeric(12,2))",
        ] {
            assert!(errors.contains(expected), "{expected}\nnot in:\n{errors}");
        }
        assert_eq!(report.errors.len(), 7, "{errors}");
    }

    #[test]
    fn null_needs_a_nullable_column_and_redact_a_non_unique_one() {
        let text = GOOD.replace("email = \"email\"", "email = \"null\"");
        let report = check(&parse(&text).expect("valid policy"), &schema());
        assert_eq!(report.errors.len(), 1, "{report:?}");
        assert!(report.errors[0].contains("NOT NULL"), "{report:?}");
        let text = GOOD.replace(
            "email = \"email\"",
            "email = { rule = \"redact\", text = \"x\" }",
        );
        let report = check(&parse(&text).expect("valid policy"), &schema());
        assert_eq!(report.errors.len(), 1, "{report:?}");
        assert!(report.errors[0].contains("UNIQUE"), "{report:?}");
    }

    #[test]
    fn kept_personal_columns_are_warnings() {
        let text = GOOD
            .replace("telephone = \"phone\"", "telephone = \"keep\"")
            .replace("description = \"scrub\"\n", "");
        let report = check(&parse(&text).expect("valid policy"), &schema());
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(
            report.warnings,
            [
                "policy policies/test.toml:5: column \"telephone\" of public.clients is kept \
                 as is but its name looks personal (\"telephone\"): check its values, or give \
                 it a rule",
            ]
        );
        let text = GOOD.replace("description = \"scrub\"\n", "").replace(
            "\"*\" = \"keep\"",
            "\"*\" = \"keep\"\nnotes_internes = \"keep\"",
        );
        let mut s = schema();
        s.tables[1].columns.push(column("notes_internes", "text"));
        s.tables[1].columns.push(column("tel", "text"));
        let report = check(&parse(&text).expect("valid policy"), &s);
        assert_eq!(report.warnings.len(), 2, "{report:?}");
        assert!(
            report.warnings[0]
                .contains(":12: column \"tel\" of public.lignes is kept as is by \"*\"")
        );
        assert!(report.warnings[1].contains(":13: column \"notes_internes\""));
    }

    #[test]
    fn personal_names_in_french_and_english() {
        for name in [
            "email",
            "Courriel",
            "téléphone",
            "tel",
            "mobile_pro",
            "iban",
            "bic",
            "nom",
            "prénom",
            "firstName",
            "last_name",
            "adresse_ligne1",
            "street",
            "code_postal",
            "zip",
            "ville",
            "city",
            "date_naissance",
            "birthDate",
            "notes",
            "commentaire",
            "ip",
            "user_agent",
            "siret",
            "raison_sociale",
            "company_name",
            "details",
            "carte_derniers_chiffres",
            "card",
        ] {
            assert!(looks_personal(name).is_some(), "{name}");
        }
        for name in [
            "id", "montant", "statut", "capacity", "nombre", "shipping", "pays",
        ] {
            assert_eq!(looks_personal(name), None, "{name}");
        }
    }

    #[test]
    fn init_covers_every_column_and_passes_the_check() {
        let schema = schema();
        let text = init(&schema, Locale::En);
        let policy = Policy::from_str_at(&text, Path::new("init.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(policy.locale, Locale::En);
        let report = check(&policy, &schema);
        assert!(report.is_ok(), "{report:?}\n{text}");
        let rule = |t, c| policy.rule_for("public", t, c).map(Rule::name);
        assert_eq!(rule("clients", "id"), Some("keep"));
        assert_eq!(rule("clients", "email"), Some("email"));
        assert_eq!(rule("clients", "telephone"), Some("phone"));
        assert_eq!(rule("clients", "date_naissance"), Some("date_shift"));
        assert_eq!(rule("clients", "tags"), Some("array"));
        assert_eq!(rule("clients", "details"), Some("json"));
        assert_eq!(rule("clients", "ip"), Some("ip_address"));
        assert_eq!(rule("clients", "notes"), Some("scrub"));
        assert_eq!(rule("clients", "nom_complet"), None, "generated");
        assert_eq!(rule("lignes", "description"), Some("scrub"));
        assert_eq!(rule("lignes", "Prix \"TTC\""), Some("keep"));
        assert!(
            text.contains(
                "# an e-mail address: a fake one, the same for one address in every \
                 table\nemail = \"email\"\n"
            ),
            "{text}"
        );
        assert!(text.contains("# nom_complet: generated"), "{text}");
    }

    #[test]
    fn init_keeps_what_the_type_cannot_take() {
        let schema = SchemaInfo {
            dialect: Dialect::Postgres,
            tables: vec![TableSchema {
                schema: "s".to_owned(),
                name: "t".to_owned(),
                columns: vec![column("email", "integer"), column("ville", "humeur")],
            }],
        };
        let text = init(&schema, Locale::FrFr);
        let policy = Policy::from_str_at(&text, Path::new("init.toml")).expect("valid");
        let report = check(&policy, &schema);
        assert!(report.is_ok(), "{report:?}\n{text}");
        assert_eq!(report.warnings.len(), 2, "{report:?}");
        assert!(
            text.contains("# the name suggests \"email\" but the column is integer: kept"),
            "{text}"
        );
    }

    #[test]
    fn fixed_length_rules_must_fit_the_column_length() {
        let mut s = schema();
        s.tables[1]
            .columns
            .push(column("code", "character varying(32)"));
        s.tables[1].columns.push(column("siret", "character(14)"));
        s.tables[1].columns.push(column("carte", "character(4)"));
        let text = GOOD.replace(
            "description = \"scrub\"",
            "description = \"scrub\"\ncode = \"hmac\"\nsiret = \"siret\"\n\
             carte = { rule = \"redact\", text = \"XXXXX\" }",
        );
        let report = check(&parse(&text).expect("valid policy"), &s);
        assert_eq!(
            report.errors,
            [
                "policy policies/test.toml:14: rule \"hmac\" does not fit column \"code\" of \
                 public.lignes (character varying(32)): it writes 64 characters and the column \
                 holds at most 32, so the restore would fail",
                "policy policies/test.toml:16: rule \"redact\" does not fit column \"carte\" of \
                 public.lignes (character(4)): it writes 5 characters and the column holds at \
                 most 4, so the restore would fail",
            ]
        );
    }

    #[test]
    fn partial_rewrites_of_unique_columns_are_warnings() {
        let mut s = schema();
        s.tables[1].columns[1].unique = true;
        let report = check(&parse(GOOD).expect("valid policy"), &s);
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(
            report.warnings,
            [
                "policy policies/test.toml:13: rule \"scrub\" on column \"description\" of \
                 public.lignes: the column is UNIQUE and \"scrub\" rewrites only parts of each \
                 value: two rows could become equal and fail the restore"
            ]
        );
    }

    #[test]
    fn sqlite_keeps_dates_json_and_arrays_in_text() {
        let mut s = schema();
        s.dialect = Dialect::Sqlite;
        for table in &mut s.tables {
            table.schema = "main".to_owned();
            for column in &mut table.columns {
                column.data_type = match column.name.as_str() {
                    "id" => "INTEGER",
                    "Prix \"TTC\"" => "",
                    _ => "TEXT",
                }
                .to_owned();
            }
        }
        let text = GOOD.replace("\"public.", "\"main.");
        let report = check(&parse(&text).expect("valid policy"), &s);
        assert_eq!(report, CheckReport::default());
        // A PostgreSQL policy on an SQLite file names the schema to use.
        let report = check(&parse(GOOD).expect("valid policy"), &s);
        assert!(
            report.errors[0].ends_with(
                "table public.clients is not in the database (did you mean \"main.clients\"?)"
            ),
            "{report:?}"
        );
    }

    #[test]
    fn json_and_array_that_keep_everything_count_as_keep() {
        let text = GOOD
            .replace(
                "details = { rule = \"json\", paths = { \"email\" = \"email\" } }",
                "details = { rule = \"json\" }",
            )
            .replace("notes = \"scrub\"", "notes = \"keep\"");
        let report = check(&parse(&text).expect("valid policy"), &schema());
        assert_eq!(report.warnings.len(), 2, "{report:?}");
        assert!(report.warnings[0].contains("\"details\""), "{report:?}");
        assert!(report.warnings[1].contains("\"notes\""), "{report:?}");
    }

    #[test]
    fn every_rule_name_is_known_to_the_rules() {
        for name in RULE_NAMES {
            let plain = Rule::from_toml(&toml::Value::String((*name).to_owned()));
            let error = plain.err().unwrap_or_default();
            assert!(
                !error.contains("unknown rule"),
                "{name} is not a rule any more: {error}"
            );
        }
    }
}
