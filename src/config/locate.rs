//! Where things are in a config file: byte offsets to lines, and the line of every key.
//!
//! [`Locations`] is built once from the spanned TOML tree, so that validation, which
//! works on the typed [`super::Config`], can still point at the line to fix.

use std::collections::HashMap;

use toml::de::{DeTable, DeValue};

/// Byte offset → 1-based line and column.
pub(crate) struct LineIndex {
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    /// The 1-based line holding byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset).max(1)
    }

    /// The 1-based column (in characters) of byte `offset` in `text`.
    pub(crate) fn column(&self, text: &str, offset: usize) -> usize {
        let start = self.starts[self.line(offset) - 1];
        text.get(start..offset)
            .map_or(1, |before| before.chars().count() + 1)
    }
}

/// The line of every key of a document, looked up by path (`["targets", "paris", "bucket"]`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Locations {
    lines: HashMap<String, usize>,
}

/// Separates path segments; array items are `PATH ITEM index`.
const SEP: char = '\u{1f}';
const ITEM: char = '\u{1e}';

impl Locations {
    pub(crate) fn from_document(root: &DeTable<'_>, index: &LineIndex) -> Self {
        let mut locations = Locations::default();
        locations.walk(root, "", index);
        locations
    }

    fn walk(&mut self, table: &DeTable<'_>, prefix: &str, index: &LineIndex) {
        for (key, value) in table {
            let path = format!("{prefix}{SEP}{}", key.get_ref());
            self.lines
                .insert(path.clone(), index.line(key.span().start));
            match value.get_ref() {
                DeValue::Table(inner) => self.walk(inner, &path, index),
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let line = index.line(item.span().start);
                        self.lines.insert(format!("{path}{ITEM}{i}"), line);
                    }
                }
                _ => {}
            }
        }
    }

    fn key(path: &[&str]) -> String {
        path.iter()
            .map(|segment| format!("{SEP}{segment}"))
            .collect()
    }

    /// The line of the key at `path` (for a table: its header); when the key is absent,
    /// the line of the nearest enclosing table that is present.
    pub(crate) fn line(&self, path: &[&str]) -> Option<usize> {
        (1..=path.len())
            .rev()
            .find_map(|len| self.lines.get(&Self::key(&path[..len])).copied())
    }

    /// The line of item `item` of the array at `path`, else the line of the array's key.
    pub(crate) fn item_line(&self, path: &[&str], item: usize) -> Option<usize> {
        self.lines
            .get(&format!("{}{ITEM}{item}", Self::key(path)))
            .copied()
            .or_else(|| self.line(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_lines_and_columns() {
        let text = "a = 1\nbé = 2\n\nc = 3";
        let index = LineIndex::new(text);
        assert_eq!(index.line(0), 1);
        assert_eq!(index.line(5), 1, "the newline belongs to its line");
        assert_eq!(index.line(6), 2);
        assert_eq!(index.line(14), 3);
        assert_eq!(index.line(15), 4);
        assert_eq!(index.column(text, 0), 1);
        assert_eq!(index.column(text, 10), 4, "columns count characters");
    }

    #[test]
    fn keys_tables_and_items_have_lines() {
        let text = "top = 1\n[t.x]\nlist = [\n  \"a\",\n  \"b\",\n]\n[u]\nk.j = 2\n";
        let index = LineIndex::new(text);
        let root = DeTable::parse(text).expect("valid toml");
        let at = Locations::from_document(root.get_ref(), &index);
        assert_eq!(at.line(&["top"]), Some(1));
        assert_eq!(at.line(&["t", "x"]), Some(2));
        assert_eq!(at.line(&["t", "x", "list"]), Some(3));
        assert_eq!(at.item_line(&["t", "x", "list"], 1), Some(5));
        assert_eq!(at.item_line(&["t", "x", "list"], 9), Some(3));
        assert_eq!(at.line(&["t", "x", "absent"]), Some(2));
        assert_eq!(at.line(&["u", "k", "j"]), Some(8));
        assert_eq!(at.line(&["nowhere"]), None);
    }
}
