//! A small .xlsx writer for the sample exports: one sheet, shared strings (as Excel writes
//! text), numbers, and date-times with a date format (so readers see them as dates). Written
//! row by row into the zip, so a 100k-row file costs little memory beyond its strings.

use std::collections::HashMap;
use std::io::{Seek, Write};
use zip::write::SimpleFileOptions;

/// One cell of a written row.
#[derive(Debug, Clone, PartialEq)]
pub enum XCell {
    Blank,
    Text(String),
    Number(f64),
    /// An Excel serial day number shown with a date-time format.
    DateTime(f64),
}

pub struct XlsxWriter<W: Write + Seek> {
    zip: zip::ZipWriter<W>,
    strings: Vec<String>,
    index: HashMap<String, usize>,
    row: u32,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn column(mut i: usize) -> String {
    let mut name = Vec::new();
    loop {
        name.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    name.reverse();
    String::from_utf8(name).expect("ascii")
}

impl<W: Write + Seek> XlsxWriter<W> {
    pub fn new(out: W) -> std::io::Result<Self> {
        let mut zip = zip::ZipWriter::new(out);
        zip.start_file("xl/worksheets/sheet1.xml", SimpleFileOptions::default())?;
        zip.write_all(
            br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
        )?;
        Ok(Self {
            zip,
            strings: Vec::new(),
            index: HashMap::new(),
            row: 0,
        })
    }

    /// Writes the next row (a row of only blanks is left out, as Excel does).
    pub fn row(&mut self, cells: &[XCell]) -> std::io::Result<()> {
        self.row += 1;
        if cells.iter().all(|c| *c == XCell::Blank) {
            return Ok(());
        }
        let mut xml = format!(r#"<row r="{}">"#, self.row);
        for (i, cell) in cells.iter().enumerate() {
            let at = format!("{}{}", column(i), self.row);
            match cell {
                XCell::Blank => {}
                XCell::Text(t) => {
                    let next = self.strings.len();
                    let n = *self.index.entry(t.clone()).or_insert(next);
                    if n == next {
                        self.strings.push(t.clone());
                    }
                    xml.push_str(&format!(r#"<c r="{at}" t="s"><v>{n}</v></c>"#));
                }
                XCell::Number(v) => xml.push_str(&format!(r#"<c r="{at}"><v>{v:E}</v></c>"#)),
                XCell::DateTime(v) => xml.push_str(&format!(r#"<c r="{at}" s="1"><v>{v}</v></c>"#)),
            }
        }
        xml.push_str("</row>");
        self.zip.write_all(xml.as_bytes())
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        let options = SimpleFileOptions::default();
        self.zip.write_all(b"</sheetData></worksheet>")?;
        self.zip.start_file("xl/sharedStrings.xml", options)?;
        self.zip.write_all(
            format!(
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{0}" uniqueCount="{0}">"#,
                self.strings.len()
            )
            .as_bytes(),
        )?;
        for s in &self.strings {
            self.zip
                .write_all(format!(r#"<si><t xml:space="preserve">{}</t></si>"#, escape(s)).as_bytes())?;
        }
        self.zip.write_all(b"</sst>")?;
        let parts: [(&str, &str); 5] = [
            (
                "[Content_Types].xml",
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>"#,
            ),
            (
                "_rels/.rels",
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
            ),
            (
                "xl/workbook.xml",
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="线索" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
            ),
            (
                "xl/_rels/workbook.xml.rels",
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#,
            ),
            (
                "xl/styles.xml",
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts><fonts count="1"><font><sz val="11"/><name val="等线"/></font></fonts><fills count="1"><fill><patternFill patternType="none"/></fill></fills><borders count="1"><border/></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs></styleSheet>"#,
            ),
        ];
        for (name, body) in parts {
            self.zip.start_file(name, options)?;
            self.zip.write_all(body.as_bytes())?;
        }
        Ok(self.zip.finish()?)
    }
}
