//! Bulk onboarding of households from CSV (a county is 210,000 households, 550,000 residents).
//!
//! The file arrives as a gRPC stream of chunks and is never held whole: a blocking CSV parser
//! reads the chunks through a channel, and the writer validates and writes one household at a
//! time inside a single transaction, so a file with a bad row writes nothing (unless bad rows
//! are to be skipped) and a dry run rolls back.
//!
//! Columns (header required, any order): `household_ref, grid, address, relation, name,
//! id_number` and optional `phone`. `grid` is a grid's id or its code. The rows of one household
//! share a `household_ref`, stand together, and exactly one of them has relation 户主.

use std::{
    collections::{HashMap, HashSet},
    io::Read,
};

use jiaxin_kit::{auth::Caller, error::Violations};
use jiaxin_proto::identity::{
    BadRow, ImportHouseholdsRequest, ImportHouseholdsResponse, ImportOptions, MembershipReason, NewResident,
    OrgNodeKind, Relation, import_households_request::Part,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::{
    domain::{access, org},
    error::{IdentityError, Result},
    ops::{Identity, households::PreparedResident, org::kind_of},
    store::{self, OrgRow},
};

const MAX_REPORTED_BAD_ROWS: usize = 1000;
const REQUIRED_COLUMNS: [&str; 6] = ["household_ref", "grid", "address", "relation", "name", "id_number"];

/// Parses a relation as written on a 户口簿 or in English.
pub fn parse_relation(text: &str) -> Option<Relation> {
    Some(match text.trim() {
        "户主" | "head" => Relation::Head,
        "配偶" | "妻" | "夫" | "妻子" | "丈夫" | "spouse" => Relation::Spouse,
        "子女" | "子" | "女" | "儿子" | "女儿" | "长子" | "长女" | "次子" | "次女" | "child" => {
            Relation::Child
        }
        "父母" | "父亲" | "母亲" | "父" | "母" | "parent" => Relation::Parent,
        "孙子女" | "孙子" | "孙女" | "外孙子" | "外孙女" | "grandchild" => Relation::Grandchild,
        "祖父母" | "祖父" | "祖母" | "外祖父" | "外祖母" | "grandparent" => Relation::Grandparent,
        "兄弟姐妹" | "兄" | "弟" | "姐" | "妹" | "sibling" => Relation::Sibling,
        "其他" | "other" => Relation::Other,
        _ => return None,
    })
}

/// One parsed CSV row with its 1-based line number.
struct Row {
    line: i64,
    household_ref: String,
    grid: String,
    address: String,
    relation: String,
    resident: NewResident,
}

enum Parsed {
    Row(Row),
    /// A line the CSV parser itself rejected (bad quoting, bad UTF-8, wrong field count).
    Unreadable {
        line: i64,
        message: String,
    },
    /// The header lacks required columns: nothing can be read.
    BadHeader(Vec<String>),
}

/// A `Read` over chunks arriving on a channel, for the blocking CSV parser.
struct ChunkReader {
    chunks: mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    offset: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.offset >= self.current.len() {
            match self.chunks.blocking_recv() {
                Some(chunk) => {
                    self.current = chunk;
                    self.offset = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.offset);
        buf[..n].copy_from_slice(&self.current[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

/// Reads the CSV from `reader`, handing each row (or the reason it cannot be read) to `emit`,
/// which answers whether to go on.
fn parse_csv(reader: impl Read, mut emit: impl FnMut(Parsed) -> bool) {
    let mut csv = csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::All).from_reader(reader);
    let header = match csv.headers() {
        Ok(h) => h.clone(),
        Err(error) => {
            emit(Parsed::Unreadable { line: 1, message: format!("表头无法读取 / unreadable header: {error}") });
            return;
        }
    };
    let index: HashMap<&str, usize> =
        header.iter().enumerate().map(|(i, name)| (name.trim_start_matches('\u{feff}'), i)).collect();
    let missing: Vec<String> =
        REQUIRED_COLUMNS.iter().filter(|c| !index.contains_key(*c)).map(|c| (*c).to_owned()).collect();
    if !missing.is_empty() {
        emit(Parsed::BadHeader(missing));
        return;
    }
    let col =
        |record: &csv::StringRecord, name: &str| index.get(name).and_then(|i| record.get(*i)).unwrap_or("").to_owned();
    for result in csv.records() {
        let parsed = match result {
            Ok(record) => Parsed::Row(Row {
                line: record.position().map_or(0, |p| p.line() as i64),
                household_ref: col(&record, "household_ref"),
                grid: col(&record, "grid"),
                address: col(&record, "address"),
                relation: col(&record, "relation"),
                resident: NewResident {
                    name: col(&record, "name"),
                    id_number: col(&record, "id_number"),
                    phone: col(&record, "phone"),
                },
            }),
            Err(error) => Parsed::Unreadable {
                line: error.position().map_or(0, |p| p.line() as i64),
                message: format!("无法解析 / unreadable: {}", error.kind_summary()),
            },
        };
        if !emit(parsed) {
            return;
        }
    }
}

trait KindSummary {
    fn kind_summary(&self) -> String;
}

impl KindSummary for csv::Error {
    /// The error without the row's content, which may hold an ID number.
    fn kind_summary(&self) -> String {
        match self.kind() {
            csv::ErrorKind::Utf8 { .. } => "不是 UTF-8 编码 / not UTF-8".into(),
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                format!("应有{expected_len}列,实有{len}列 / expected {expected_len} fields, found {len}")
            }
            _ => "格式错误 / malformed".into(),
        }
    }
}

/// Running totals and bad rows of one import.
#[derive(Default)]
struct Report {
    rows_read: i64,
    households: i64,
    residents: i64,
    bad_rows: Vec<BadRow>,
    bad_row_count: i64,
}

impl Report {
    fn bad(&mut self, line: i64, field: &str, message: impl Into<String>) {
        self.bad_row_count += 1;
        if self.bad_rows.len() < MAX_REPORTED_BAD_ROWS {
            self.bad_rows.push(BadRow { line, field: field.to_owned(), message: message.into() });
        }
    }
}

/// Validates and writes households one group of rows at a time.
struct Importer<'a> {
    identity: &'a Identity,
    caller: &'a Caller,
    tx: jiaxin_kit::storage::Tx,
    options: ImportOptions,
    report: Report,
    grids: HashMap<String, Option<OrgRow>>,
    seen_refs: HashSet<String>,
    seen_ids: HashSet<String>,
}

impl Importer<'_> {
    /// Whether writing still makes sense: not a dry run, and no bad row unless skipping them.
    fn writing(&self) -> bool {
        !self.options.dry_run && (self.options.skip_bad_rows || self.report.bad_row_count == 0)
    }

    async fn grid(&mut self, key: &str) -> Result<Option<OrgRow>> {
        if let Some(cached) = self.grids.get(key) {
            return Ok(cached.clone());
        }
        let mut found = store::org_node(&mut *self.tx, key).await?;
        if found.is_none()
            && let Some(scope) = store::org_node(&mut *self.tx, self.caller.scope()).await?
        {
            let mut by_code = store::grids_by_code_in(&mut *self.tx, key, &scope.path).await?;
            if by_code.len() == 1 {
                found = by_code.pop();
            }
        }
        let visible = found.filter(|g| kind_of(g) == OrgNodeKind::Grid && self.caller.covers(&org::path_ids(&g.path)));
        self.grids.insert(key.to_owned(), visible.clone());
        Ok(visible)
    }

    /// Validates one household's rows and writes what may be written.
    async fn household(&mut self, rows: Vec<Row>) -> Result<()> {
        let Some(first) = rows.first() else { return Ok(()) };
        let household_ref = first.household_ref.clone();
        let mut bad_lines: HashSet<i64> = HashSet::new();
        if household_ref.is_empty() {
            for row in &rows {
                self.report.bad(row.line, "household_ref", "必填 / required");
            }
            return Ok(());
        }
        if !self.seen_refs.insert(household_ref.clone()) {
            for row in &rows {
                self.report.bad(
                    row.line,
                    "household_ref",
                    "同一户的行应当相邻 / rows of one household must be contiguous",
                );
            }
            return Ok(());
        }
        let heads: Vec<usize> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| parse_relation(&r.relation) == Some(Relation::Head))
            .map(|(i, _)| i)
            .collect();
        if heads.len() != 1 {
            let message = if heads.is_empty() {
                "该户没有户主行 / no 户主 row"
            } else {
                "该户有多个户主行 / more than one 户主 row"
            };
            for row in &rows {
                self.report.bad(row.line, "relation", message);
            }
            return Ok(());
        }
        let head_index = heads[0];
        let grid_key = rows[head_index].grid.clone();
        let grid = if grid_key.is_empty() { None } else { self.grid(&grid_key).await? };

        let mut prepared: Vec<Option<(PreparedResident, Relation)>> = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut v = Violations::new();
            let relation = parse_relation(&row.relation);
            if relation.is_none() {
                v.add("relation", "无法识别的与户主关系 / unknown relation");
            }
            if row.grid != grid_key {
                v.add("grid", "与户主行不一致 / differs from the head row");
            } else if grid.is_none() {
                v.add("grid", "网格不存在或不在权限范围内 / no such grid in your scope");
            }
            if row.address.is_empty() {
                v.add("address", "必填 / required");
            }
            let resident = self.identity.prepare_resident(&mut v, "", &row.resident);
            if let Some(resident) = &resident {
                if !self.seen_ids.insert(resident.bidx.clone()) {
                    v.add("id_number", "文件中重复 / appears twice in the file");
                } else if store::resident_id_by_index(&mut *self.tx, &resident.bidx).await?.is_some() {
                    v.add("id_number", "该身份证号已登记 / this ID number is registered already");
                }
            }
            match v.into_result() {
                Ok(()) => prepared.push(resident.zip(relation)),
                Err(violations) => {
                    bad_lines.insert(row.line);
                    for violation in violations {
                        self.report.bad(row.line, &violation.field, violation.message);
                    }
                    prepared.push(None);
                }
            }
        }
        if bad_lines.contains(&rows[head_index].line) {
            for row in rows.iter().filter(|r| !bad_lines.contains(&r.line)) {
                self.report.bad(
                    row.line,
                    "household_ref",
                    "户主行有误,整户未导入 / household skipped: its head row is bad",
                );
            }
            return Ok(());
        }
        if !self.writing() {
            return Ok(());
        }
        let (Some(grid), Some(Some((head, _)))) = (grid, prepared.get(head_index)) else {
            return Ok(());
        };
        store::insert_resident(&mut *self.tx, &head.row()).await?;
        let household_id = self
            .identity
            .create_household(&mut self.tx, &grid, &rows[head_index].address, head, MembershipReason::Imported)
            .await?;
        self.report.households += 1;
        self.report.residents += 1;
        for (index, member) in prepared.iter().enumerate() {
            if index == head_index {
                continue;
            }
            if let Some((resident, relation)) = member {
                store::insert_resident(&mut *self.tx, &resident.row()).await?;
                self.identity
                    .join_new_member(&mut self.tx, &household_id, resident, *relation, MembershipReason::Imported)
                    .await?;
                self.report.residents += 1;
            }
        }
        Ok(())
    }
}

impl Identity {
    pub async fn import_households(
        &self,
        caller: &Caller,
        mut stream: impl tokio_stream::Stream<Item = std::result::Result<ImportHouseholdsRequest, tonic::Status>>
        + Unpin
        + Send
        + 'static,
    ) -> Result<ImportHouseholdsResponse> {
        caller.require_any_role(access::IMPORTERS).map_err(|_| IdentityError::PermissionDenied)?;
        let options = match stream.next().await {
            Some(Ok(ImportHouseholdsRequest { part: Some(Part::Options(options)) })) => options,
            Some(Err(status)) => {
                return Err(IdentityError::Internal(format!("import stream failed: {}", status.code())));
            }
            _ => {
                return Err(IdentityError::invalid(
                    "options",
                    "第一条消息应为导入选项 / the first message must carry the options",
                ));
            }
        };

        let (chunk_tx, chunk_rx) = mpsc::channel::<Vec<u8>>(16);
        let (row_tx, mut row_rx) = mpsc::channel::<Parsed>(1024);
        let feeder = tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                match message {
                    Ok(ImportHouseholdsRequest { part: Some(Part::Chunk(bytes)) }) => {
                        if chunk_tx.send(bytes).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {
                        return Err(IdentityError::invalid(
                            "options",
                            "选项只能出现在第一条消息 / options only in the first message",
                        ));
                    }
                    Err(status) => {
                        return Err(IdentityError::Internal(format!("import stream failed: {}", status.code())));
                    }
                }
            }
            Ok(())
        });
        let parser = tokio::task::spawn_blocking(move || {
            let reader = ChunkReader { chunks: chunk_rx, current: Vec::new(), offset: 0 };
            parse_csv(reader, |parsed| row_tx.blocking_send(parsed).is_ok())
        });

        let mut importer = Importer {
            identity: self,
            caller,
            tx: self.db.begin().await?,
            options,
            report: Report::default(),
            grids: HashMap::new(),
            seen_refs: HashSet::new(),
            seen_ids: HashSet::new(),
        };
        let mut group: Vec<Row> = Vec::new();
        while let Some(parsed) = row_rx.recv().await {
            match parsed {
                Parsed::BadHeader(missing) => {
                    return Err(IdentityError::invalid(
                        "header",
                        format!("缺少列 / missing columns: {}", missing.join(", ")),
                    ));
                }
                Parsed::Unreadable { line, message } => {
                    importer.report.rows_read += 1;
                    importer.report.bad(line, "", message);
                }
                Parsed::Row(row) => {
                    importer.report.rows_read += 1;
                    if group.first().is_some_and(|g| g.household_ref != row.household_ref) {
                        importer.household(std::mem::take(&mut group)).await?;
                    }
                    group.push(row);
                }
            }
        }
        importer.household(group).await?;
        feeder.await.map_err(|e| IdentityError::Internal(e.to_string()))??;
        parser.await.map_err(|e| IdentityError::Internal(e.to_string()))?;

        let Importer { tx, report, options, .. } = importer;
        let committed =
            !options.dry_run && (options.skip_bad_rows || report.bad_row_count == 0) && report.households > 0;
        if committed {
            self.commit(tx).await?;
        } else {
            tx.rollback().await?;
        }
        tracing::info!(
            rows = report.rows_read,
            households = report.households,
            bad_rows = report.bad_row_count,
            committed,
            "household import finished"
        );
        Ok(ImportHouseholdsResponse {
            rows_read: report.rows_read,
            households_imported: if committed { report.households } else { 0 },
            residents_imported: if committed { report.residents } else { 0 },
            bad_rows: report.bad_rows,
            bad_row_count: report.bad_row_count,
            committed,
        })
    }
}

/// Entry points for the fuzz targets (`fuzz/`), behind the `fuzzing` feature: the import's
/// parsing and per-field checks, without a database.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use super::{Parsed, parse_csv, parse_relation};
    use crate::domain::id_number::{IdNumber, mask_phone, parse_phone};

    /// Parses `bytes` as an import file and checks every row's fields as the import does;
    /// returns the rows read. Must never panic, whatever the bytes.
    pub fn import_csv(bytes: &[u8]) -> usize {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap_or_default();
        let mut rows = 0;
        parse_csv(bytes, |parsed| {
            if let Parsed::Row(row) = parsed {
                rows += 1;
                let _ = parse_relation(&row.relation);
                if let Ok(id) = IdNumber::parse(&row.resident.id_number, today) {
                    let _ = (id.masked(), id.is_adult_on(today));
                }
                if let Ok(phone) = parse_phone(&row.resident.phone) {
                    let _ = mask_phone(&phone);
                }
            }
            true
        });
        rows
    }
}
