//! Per-table row counts and order-independent content checksums.
//!
//! A table's checksum is the wrapping sum, as a 128-bit integer, of the XXH3-128
//! hash of each row's text in the dump (a COPY line for PostgreSQL, an
//! INSERT statement for SQLite). A sum does not depend on row order, so a checksum
//! recomputed from a restored database matches the one taken at backup time.
//!
//! XXH3 rather than SHA-256: these checksums catch a restore that lost or changed
//! rows, not an attacker (the manifest that holds them is authenticated, and the
//! data object has its own SHA-256); XXH3 hashes a row ten times faster.

use serde::{Deserialize, Serialize};

use super::TableInfo;

/// What a dump held for one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStats {
    pub schema: String,
    pub name: String,
    pub columns: Vec<String>,
    pub rows: u64,
    /// 32 hex digits.
    pub checksum: String,
}

impl TableStats {
    pub fn qualified(&self) -> String {
        super::qualified_name(&self.schema, &self.name)
    }
}

/// Accumulates rows of one table.
#[derive(Debug, Clone, Default)]
pub struct RowAccumulator {
    rows: u64,
    sum: u128,
}

impl RowAccumulator {
    pub fn add(&mut self, row_text: &[u8]) {
        let hash = xxhash_rust::xxh3::xxh3_128(row_text);
        self.sum = self.sum.wrapping_add(hash);
        self.rows += 1;
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn finish(&self, table: &TableInfo) -> TableStats {
        TableStats {
            schema: table.schema.clone(),
            name: table.name.clone(),
            columns: table.columns.clone(),
            rows: self.rows,
            checksum: hex::encode(self.sum.to_le_bytes()),
        }
    }
}

/// Every table of one dump, in dump order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpStats {
    pub tables: Vec<TableStats>,
}

impl DumpStats {
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// Differences between what was recorded (`self`) and what was seen (`other`),
    /// one human-readable line each; empty when they agree.
    pub fn differences(&self, other: &DumpStats) -> Vec<String> {
        let mut out = Vec::new();
        for want in &self.tables {
            match other
                .tables
                .iter()
                .find(|t| t.schema == want.schema && t.name == want.name)
            {
                None => out.push(format!("table {} is missing", want.qualified())),
                Some(got) if got.rows != want.rows => out.push(format!(
                    "table {}: {} rows, expected {}",
                    want.qualified(),
                    got.rows,
                    want.rows
                )),
                Some(got) if got.checksum != want.checksum => out.push(format!(
                    "table {}: content checksum {} differs from the recorded {}",
                    want.qualified(),
                    got.checksum,
                    want.checksum
                )),
                Some(_) => {}
            }
        }
        for got in &other.tables {
            if !self
                .tables
                .iter()
                .any(|t| t.schema == got.schema && t.name == got.name)
            {
                out.push(format!("table {} was not in the backup", got.qualified()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_ignores_order_but_not_content() {
        let t = TableInfo {
            schema: "public".into(),
            name: "t".into(),
            columns: vec!["a".into()],
        };
        let mut a = RowAccumulator::default();
        let mut b = RowAccumulator::default();
        let mut c = RowAccumulator::default();
        for r in [&b"1\tx"[..], b"2\ty", b"3\tz"] {
            a.add(r);
        }
        for r in [&b"3\tz"[..], b"1\tx", b"2\ty"] {
            b.add(r);
        }
        for r in [&b"3\tz"[..], b"1\tx", b"2\tY"] {
            c.add(r);
        }
        assert_eq!(a.finish(&t), b.finish(&t));
        assert_ne!(a.finish(&t).checksum, c.finish(&t).checksum);
        let want = DumpStats {
            tables: vec![a.finish(&t)],
        };
        let got = DumpStats {
            tables: vec![c.finish(&t)],
        };
        assert_eq!(want.differences(&want), Vec::<String>::new());
        assert_eq!(want.differences(&got).len(), 1);
    }
}
