//! The rows of an uploaded file, one at a time with flat memory: `.csv` through a streaming
//! decoder (UTF-8, with or without BOM, or GB18030), `.xlsx` through calamine's cell reader
//! (the first sheet). Reading runs on a blocking thread and hands rows over a bounded channel,
//! so parsing overlaps the store writes and never runs ahead by more than [`ROWS_AHEAD`].

use super::text::Encoding;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// One cell as the file holds it. A spreadsheet keeps numbers and dates as numbers; a CSV only text.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    /// An Excel serial day number (days since 1899-12-30).
    Date(f64),
}

impl Cell {
    pub fn is_blank(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(t) => t.trim().is_empty(),
            _ => false,
        }
    }

    /// The cell as text, as a merchant would read it in the sheet.
    pub fn text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(t) => t.clone(),
            Cell::Number(n) | Cell::Date(n) => {
                if n.fract() == 0.0 && n.abs() < 1e15 {
                    format!("{}", *n as i64)
                } else {
                    format!("{n}")
                }
            }
        }
    }
}

/// A row and its number in the file (1-based, as the sheet shows it).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub number: u64,
    pub cells: Vec<Cell>,
}

impl Row {
    pub fn is_blank(&self) -> bool {
        self.cells.iter().all(Cell::is_blank)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    /// From the file's name; `.xls` (the old binary format) and others are not read.
    pub fn of(file_name: &str) -> Result<Self, String> {
        let lower = file_name.trim().to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Ok(Format::Csv)
        } else if lower.ends_with(".xlsx") {
            Ok(Format::Xlsx)
        } else if lower.ends_with(".xls") {
            Err("a .xls file is the old Excel format: save it as .xlsx or .csv".into())
        } else {
            Err("only .xlsx and .csv files are imported".into())
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }
}

/// Rows read ahead of the writer, at most.
pub const ROWS_AHEAD: usize = 1024;

/// What the reading thread says: rows, then either the end of the file or one error. A channel
/// that closes without either is a reader that died, not the end of the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Row(Row),
    End,
    Failed(String),
}

/// Starts reading `path`; the receiver yields its rows in order. The encoding (for a CSV) is
/// told first, on `encoding`.
pub fn spawn(path: PathBuf, format: Format) -> (mpsc::Receiver<Item>, tokio::sync::oneshot::Receiver<Encoding>) {
    let (tx, rx) = mpsc::channel(ROWS_AHEAD);
    let (enc_tx, enc_rx) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let result = match format {
            Format::Csv => read_csv(&path, enc_tx, &tx),
            Format::Xlsx => {
                let _ = enc_tx.send(Encoding::Utf8);
                read_xlsx(&path, &tx)
            }
        };
        let last = match result {
            Ok(Reading::Done) => Item::End,
            Ok(Reading::Stopped) => return,
            Err(e) => Item::Failed(e),
        };
        let _ = tx.blocking_send(last);
    });
    (rx, enc_rx)
}

/// How a read ended without an error.
enum Reading {
    Done,
    /// The receiver went away (the run stopped early).
    Stopped,
}

/// Sends a row; `false` when the receiver is gone (the import stopped early).
fn send(tx: &mpsc::Sender<Item>, row: Row) -> bool {
    tx.blocking_send(Item::Row(row)).is_ok()
}

/// Bytes looked at to tell UTF-8 from GB18030.
const SNIFF_BYTES: usize = 1 << 20;

/// UTF-8 when the file's start is valid UTF-8 (a sequence cut by the sniff's end is fine), else
/// GB18030. Chinese Excel's "CSV" is GB18030; anything else writes UTF-8.
pub fn sniff(start: &[u8]) -> Encoding {
    let bytes = start.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(start);
    match std::str::from_utf8(bytes) {
        Ok(_) => Encoding::Utf8,
        Err(e) if e.error_len().is_none() => Encoding::Utf8,
        Err(_) => Encoding::Gb18030,
    }
}

fn read_csv(
    path: &Path,
    enc_tx: tokio::sync::oneshot::Sender<Encoding>,
    tx: &mpsc::Sender<Item>,
) -> Result<Reading, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("the file could not be opened: {e}"))?;
    let mut start = vec![0u8; SNIFF_BYTES];
    let mut filled = 0;
    while filled < start.len() {
        match file.read(&mut start[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) => return Err(format!("the file could not be read: {e}")),
        }
    }
    start.truncate(filled);
    let encoding = sniff(&start);
    let _ = enc_tx.send(encoding);
    let decoder = match encoding {
        Encoding::Utf8 => encoding_rs::UTF_8.new_decoder_with_bom_removal(),
        Encoding::Gb18030 => encoding_rs::GB18030.new_decoder_without_bom_handling(),
    };
    let text = Decoding {
        inner: std::io::Cursor::new(start).chain(file),
        decoder,
        input: vec![0; 64 * 1024],
        input_len: 0,
        input_pos: 0,
        eof: false,
        finished: false,
        pending: Vec::new(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::new(text));
    let mut record = csv::StringRecord::new();
    // The row number as a spreadsheet shows it: the record's first line, less the line breaks
    // inside quoted cells above it. The reader skips empty lines (rows too, in a spreadsheet)
    // and counts them into the next record's start, so the start is found from the record's
    // end: the line the reader stands on after it, less its own breaks.
    let mut inner_breaks = 0u64;
    let mut number = 0u64;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(Reading::Done),
            Ok(true) => {
                let breaks: u64 = record.iter().map(|c| c.matches('\n').count() as u64).sum();
                // After a line break the reader stands on the next line; at the end of a file
                // without a final break, on the record's last.
                let last_line = reader.position().line() - u64::from(!reader.is_done());
                let first_line = last_line.saturating_sub(breaks);
                number = first_line.saturating_sub(inner_breaks).max(number + 1);
                inner_breaks += breaks;
                let cells = record.iter().map(|c| Cell::Text(c.to_owned())).collect();
                if !send(tx, Row { number, cells }) {
                    return Ok(Reading::Stopped);
                }
            }
            Err(e) => return Err(format!("the CSV could not be read after row {number}: {e}")),
        }
    }
}

/// A reader of UTF-8 text decoded from another encoding, chunk by chunk.
struct Decoding<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Vec<u8>,
    input_len: usize,
    input_pos: usize,
    eof: bool,
    /// The decoder was told the input ended: it must not be called again (it panics).
    finished: bool,
    /// Decoded bytes a short `out` had no room for.
    pending: Vec<u8>,
}

impl<R: Read> Read for Decoding<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if !self.pending.is_empty() {
            let n = self.pending.len().min(out.len());
            out[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Ok(n);
        }
        // decode_to_utf8 needs room for a whole character.
        if out.len() < 4 {
            let mut small = [0u8; 4];
            let n = self.read(&mut small)?;
            let k = n.min(out.len());
            out[..k].copy_from_slice(&small[..k]);
            self.pending.extend_from_slice(&small[k..n]);
            return Ok(k);
        }
        loop {
            if self.finished {
                return Ok(0);
            }
            if self.input_pos == self.input_len && !self.eof {
                self.input_len = self.inner.read(&mut self.input)?;
                self.input_pos = 0;
                self.eof = self.input_len == 0;
            }
            let (result, read, written, _) =
                self.decoder
                    .decode_to_utf8(&self.input[self.input_pos..self.input_len], out, self.eof);
            self.input_pos += read;
            if self.eof && result == encoding_rs::CoderResult::InputEmpty {
                self.finished = true;
            }
            if written > 0 || self.finished {
                return Ok(written);
            }
        }
    }
}

/// Whether the workbook counts its dates from 1904 (old Mac Excel): its serial days are then
/// 1,462 fewer than the 1900 system's for the same date.
fn dates_from_1904(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(mut zip) = zip::ZipArchive::new(BufReader::new(file)) else {
        return false;
    };
    let Ok(mut workbook) = zip.by_name("xl/workbook.xml") else {
        return false;
    };
    let mut xml = String::new();
    if workbook.read_to_string(&mut xml).is_err() {
        return false;
    }
    xml.contains("date1904=\"1\"") || xml.contains("date1904=\"true\"")
}

/// Days between the 1900 and the 1904 date systems.
const DAYS_1900_TO_1904: f64 = 1462.0;

fn read_xlsx(path: &Path, tx: &mpsc::Sender<Item>) -> Result<Reading, String> {
    use calamine::{DataRef, Reader, Xlsx};
    let date_offset = if dates_from_1904(path) { DAYS_1900_TO_1904 } else { 0.0 };
    let file = std::fs::File::open(path).map_err(|e| format!("the file could not be opened: {e}"))?;
    let mut book: Xlsx<_> = Xlsx::new(BufReader::new(file)).map_err(|e| format!("not a readable .xlsx file: {e}"))?;
    let Some(sheet) = book.sheet_names().first().cloned() else {
        return Err("the workbook has no sheet".into());
    };
    let mut cells = book
        .worksheet_cells_reader(&sheet)
        .map_err(|e| format!("the sheet {sheet:?} could not be read: {e}"))?;
    let mut current: Option<Row> = None;
    while let Some(cell) = cells
        .next_cell()
        .map_err(|e| format!("the sheet {sheet:?} could not be read: {e}"))?
    {
        let (r, c) = cell.get_position();
        let value = match cell.get_value() {
            DataRef::Empty => Cell::Empty,
            DataRef::Int(i) => Cell::Number(*i as f64),
            DataRef::Float(f) => Cell::Number(*f),
            DataRef::String(s) => Cell::Text(s.clone()),
            DataRef::SharedString(s) => Cell::Text((*s).to_owned()),
            DataRef::Bool(b) => Cell::Text(b.to_string()),
            DataRef::DateTime(d) => Cell::Date(d.as_f64() + date_offset),
            DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Cell::Text(s.clone()),
            DataRef::Error(_) => Cell::Empty,
        };
        let number = u64::from(r) + 1;
        if current.as_ref().is_some_and(|row| row.number != number) {
            let row = current.take().expect("checked above");
            if !send(tx, row) {
                return Ok(Reading::Stopped);
            }
        }
        let row = current.get_or_insert_with(|| Row {
            number,
            cells: Vec::new(),
        });
        let c = c as usize;
        if row.cells.len() <= c {
            row.cells.resize(c + 1, Cell::Empty);
        }
        row.cells[c] = value;
    }
    if let Some(row) = current
        && !send(tx, row)
    {
        return Ok(Reading::Stopped);
    }
    Ok(Reading::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_takes_utf8_with_a_cut_character_and_gb18030_otherwise() {
        let utf8 = "手机号,姓名\n".as_bytes();
        assert_eq!(sniff(utf8), Encoding::Utf8);
        assert_eq!(sniff(&utf8[..utf8.len() - 3]), Encoding::Utf8);
        let (gb, _, _) = encoding_rs::GB18030.encode("手机号,姓名\n");
        assert_eq!(sniff(&gb), Encoding::Gb18030);
    }

    #[tokio::test]
    async fn a_gb18030_csv_streams_its_rows_decoded() {
        let dir = std::env::temp_dir().join(format!("reader-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gb.csv");
        let mut text = String::from("客户姓名,手机号\n");
        for i in 0..5000 {
            text.push_str(&format!("张{i},\"138 0013 {i:04}\"\n"));
        }
        let (gb, _, _) = encoding_rs::GB18030.encode(&text);
        std::fs::write(&path, &gb).unwrap();
        let (mut rows, encoding) = spawn(path, Format::Csv);
        assert_eq!(encoding.await.unwrap(), Encoding::Gb18030);
        let mut all = Vec::new();
        while let Some(item) = rows.recv().await {
            match item {
                Item::Row(row) => all.push(row),
                Item::End => break,
                Item::Failed(e) => panic!("{e}"),
            }
        }
        assert_eq!(all.len(), 5001);
        assert_eq!(all[0].cells[0], Cell::Text("客户姓名".into()));
        assert_eq!(
            all[4999].cells,
            vec![Cell::Text("张4998".into()), Cell::Text("138 0013 4998".into())]
        );
        assert_eq!(all[4999].number, 5000);
    }

    async fn rows_of(text: &[u8], name: &str) -> Vec<Row> {
        let dir = std::env::temp_dir().join(format!("reader-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let (mut rows, _) = spawn(path, Format::Csv);
        let mut all = Vec::new();
        loop {
            match rows.recv().await.expect("the reader ends with End") {
                Item::Row(row) => all.push(row),
                Item::End => return all,
                Item::Failed(e) => panic!("{e}"),
            }
        }
    }

    /// The decoder panics if asked again after the end; a file whose last line has no line
    /// break made the CSV reader ask (and the release build aborts on a panic).
    #[tokio::test]
    async fn a_last_line_without_a_line_break_is_read_and_the_reader_ends() {
        let rows = rows_of("手机号,姓名\r\n13800138000,张".as_bytes(), "nobreak.csv").await;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].cells[1], Cell::Text("张".into()));
        let (gb, _, _) = encoding_rs::GB18030.encode("手机号,姓名\r\n13800138000,张");
        assert_eq!(rows_of(&gb, "nobreak-gb.csv").await.len(), 2);
    }

    #[tokio::test]
    async fn row_numbers_are_the_sheets_with_empty_lines_and_breaks_inside_cells() {
        let text = "手机号,留言\n\n13800138000,\"两行\n留言\"\n13800138001,好\n";
        let rows = rows_of(text.as_bytes(), "numbers.csv").await;
        let numbers: Vec<u64> = rows.iter().map(|r| r.number).collect();
        assert_eq!(numbers, vec![1, 3, 4], "Excel shows the empty line as row 2");
        let rows = rows_of(text.trim_end().as_bytes(), "numbers-nobreak.csv").await;
        let numbers: Vec<u64> = rows.iter().map(|r| r.number).collect();
        assert_eq!(numbers, vec![1, 3, 4], "and without a final line break");
    }

    #[test]
    fn the_decoder_serves_reads_of_any_size_without_losing_a_byte() {
        let text = "客户姓名,手机号\n".repeat(50);
        let (gb, _, _) = encoding_rs::GB18030.encode(&text);
        let mut reader = Decoding {
            inner: std::io::Cursor::new(gb.into_owned()),
            decoder: encoding_rs::GB18030.new_decoder_without_bom_handling(),
            input: vec![0; 7],
            input_len: 0,
            input_pos: 0,
            eof: false,
            finished: false,
            pending: Vec::new(),
        };
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(String::from_utf8(out).unwrap(), text);
        assert_eq!(reader.read(&mut buf).unwrap(), 0, "and again at the end, no panic");
    }

    #[test]
    fn formats_come_from_the_name() {
        assert_eq!(Format::of("线索.XLSX"), Ok(Format::Xlsx));
        assert_eq!(Format::of("a.csv"), Ok(Format::Csv));
        assert!(Format::of("a.xls").unwrap_err().contains(".xlsx"));
        assert!(Format::of("a.txt").is_err());
    }
}
