//! Sample back-office exports, as merchants download them from 抖音来客 客资管理, 飞鱼CRM and
//! 巨量引擎 线索管理: each platform's headers, and the quirks real files have — GB18030 CSVs
//! (Chinese Excel's default), a BOM, full-width headers, a title row above the header, blank rows,
//! 19-digit ids Excel stored as numbers, masked phones, rows with nothing to identify them.
//! Every file comes with what an import of it must do (its manifest), so tests check exactly.
//! `scripts/sample-exports <dir>` writes them all, with a 100k-row one.

use crate::xlsx::{XCell, XlsxWriter};
use chrono::{DateTime, Duration, TimeZone, Utc};
use shared::lead::LeadSource;

/// One lead as a back office lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleLead {
    pub id: String,
    pub name: String,
    pub phone: String,
    pub created: DateTime<Utc>,
    pub ad_id: Option<String>,
    pub store: Option<String>,
    pub remark: Option<String>,
    pub status: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Laike,
    Feiyu,
    OceanEngine,
    OceanEngineLife,
}

impl Platform {
    pub const ALL: [Platform; 4] = [
        Platform::Laike,
        Platform::Feiyu,
        Platform::OceanEngine,
        Platform::OceanEngineLife,
    ];

    pub fn source(self) -> LeadSource {
        match self {
            Platform::Laike => LeadSource::Laike,
            Platform::Feiyu => LeadSource::Feiyu,
            Platform::OceanEngine => LeadSource::OceanEngineClue,
            Platform::OceanEngineLife => LeadSource::OceanEngineLife,
        }
    }

    /// The export's headers: id, name, phone, time, ad, store, remark, status, and one the import
    /// does not know (kept as a form field).
    fn headers(self) -> [&'static str; 9] {
        match self {
            Platform::Laike => [
                "客资ID",
                "客户姓名",
                "客户电话",
                "留资时间",
                "ad_id",
                "门店",
                "留言",
                "线索状态",
                "意向项目",
            ],
            Platform::Feiyu => [
                "线索ID",
                "姓名",
                "电话",
                "创建时间",
                "广告计划ID",
                "门店名称",
                "备注",
                "跟进状态",
                "所在地",
            ],
            Platform::OceanEngine => [
                "线索ID",
                "姓名",
                "手机号",
                "线索创建时间",
                "广告ID",
                "门店",
                "留言",
                "线索状态",
                "表单名称",
            ],
            Platform::OceanEngineLife => [
                "线索ID",
                "客户姓名",
                "手机号码",
                "提交时间",
                "单元ID",
                "门店名称",
                "备注",
                "线索状态",
                "意向",
            ],
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Platform::Laike => "laike",
            Platform::Feiyu => "feiyu",
            Platform::OceanEngine => "oceanengine",
            Platform::OceanEngineLife => "oceanengine-life",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Xlsx,
    CsvUtf8Bom,
    CsvGb18030,
}

/// How the file is written.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub kind: FileKind,
    /// Ids as spreadsheet numbers (what Excel does to a 19-digit id typed or pasted as digits).
    pub ids_as_numbers: bool,
    pub full_width_headers: bool,
    pub title_row: bool,
    /// A blank row after every n leads.
    pub blank_every: Option<usize>,
    /// Without the id column (an export that has none): ids come from phone and time.
    pub without_ids: bool,
}

impl Style {
    pub fn plain(kind: FileKind) -> Self {
        Self {
            kind,
            ids_as_numbers: false,
            full_width_headers: false,
            title_row: false,
            blank_every: None,
            without_ids: false,
        }
    }
}

/// A row that must be refused, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRow {
    MaskedPhone,
    NothingToIdentify,
    UnreadableTime,
    /// The id as Excel writes a 19-digit number into a CSV: `7.30123E+18`.
    IdInScientificNotation,
}

/// What an import of the file must end with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    /// The rows that must be stored, in file order (`phone` empty where the file masked it).
    pub valid: Vec<SampleLead>,
    /// (row number in the file, column header as written, a fragment of the reason).
    pub rejected: Vec<(u64, Option<String>, &'static str)>,
    pub blank_rows: u64,
}

fn full_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
            c => c,
        })
        .collect::<String>()
        + "\u{3000}"
}

fn beijing_text(t: DateTime<Utc>) -> String {
    t.with_timezone(&shared::sources::beijing())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The Excel serial day number of `t` in Beijing time.
fn serial(t: DateTime<Utc>) -> f64 {
    let local = t.with_timezone(&shared::sources::beijing()).naive_local();
    let base = chrono::NaiveDate::from_ymd_opt(1899, 12, 30)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    (local - base).num_seconds() as f64 / 86_400.0
}

/// `n` leads of a back office, deterministic from `seed`: 19-digit ids, distinct mobiles, one a
/// minute from `start`.
pub fn leads(n: usize, seed: u64, start: DateTime<Utc>) -> Vec<SampleLead> {
    (0..n)
        .map(|i| {
            let k = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            SampleLead {
                id: format!("{}", 7_300_000_000_000_000_000u64 + (k % 1_000_000_000_000)),
                name: format!("{}{}", ["张", "李", "王", "赵", "陈"][i % 5], ["先生", "女士"][i % 2]),
                phone: format!("13{}{:08}", 5 + (k % 5), k % 100_000_000),
                created: start + Duration::minutes(i as i64),
                ad_id: Some(format!("{}", 7_600_000_000_000_000_000u64 + (i % 4) as u64)),
                store: Some(["徐汇店", "静安店"][i % 2].into()),
                remark: (i % 3 == 0).then(|| "想了解价格, 周末到店".into()),
                status: "新线索".into(),
            }
        })
        .collect()
}

/// A default start for sample leads: 2026-11-01 09:00 Beijing.
pub fn sample_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 1, 0, 0).unwrap()
}

/// Which of the written rows are bad: (position among the leads, how).
pub type Faults<'a> = &'a [(usize, BadRow)];

/// The file's bytes and what its import must do.
pub fn render(platform: Platform, style: Style, leads: &[SampleLead], faults: Faults<'_>) -> (Vec<u8>, Manifest) {
    let mut out = Vec::new();
    let manifest = write(platform, style, leads, faults, &mut std::io::Cursor::new(&mut out)).expect("in memory");
    (out, manifest)
}

/// Writes the file to `out` (an xlsx needs seeking) and answers its manifest.
pub fn write<W: std::io::Write + std::io::Seek>(
    platform: Platform,
    style: Style,
    leads: &[SampleLead],
    faults: Faults<'_>,
    out: &mut W,
) -> std::io::Result<Manifest> {
    let headers: Vec<String> = platform
        .headers()
        .iter()
        .enumerate()
        .filter(|(i, _)| !(style.without_ids && *i == 0))
        .map(|(_, h)| {
            if style.full_width_headers {
                full_width(h)
            } else {
                (*h).to_owned()
            }
        })
        .collect();
    let column = |i: usize| {
        headers[if style.without_ids { i - 1 } else { i }]
            .trim_end_matches('\u{3000}')
            .to_owned()
    };
    let mut rows: Vec<Vec<XCell>> = Vec::new();
    let mut manifest = Manifest::default();
    if style.title_row {
        rows.push(vec![XCell::Text("线索列表 导出时间：2026-12-01 10:00".into())]);
    }
    rows.push(headers.iter().map(|h| XCell::Text(h.clone())).collect());
    for (i, lead) in leads.iter().enumerate() {
        let fault = faults.iter().find(|(at, _)| *at == i).map(|(_, f)| *f);
        let mut id = if style.ids_as_numbers {
            XCell::Number(lead.id.parse::<f64>().unwrap_or_default())
        } else {
            XCell::Text(lead.id.clone())
        };
        let mut phone = XCell::Text(lead.phone.clone());
        let mut time = match style.kind {
            FileKind::Xlsx => XCell::DateTime(serial(lead.created)),
            _ => XCell::Text(beijing_text(lead.created)),
        };
        let row_number = rows.len() as u64 + 1;
        match fault {
            Some(BadRow::MaskedPhone) => {
                phone = XCell::Text(format!("{}****{}", &lead.phone[..3], &lead.phone[7..]));
                if style.without_ids {
                    manifest.rejected.push((row_number, Some(column(2)), "masked"));
                } else if style.ids_as_numbers {
                    manifest.rejected.push((row_number, Some(column(0)), "as text"));
                } else {
                    // The id identifies it; its phone is unknown (an empty `phone` here).
                    manifest.valid.push(SampleLead {
                        phone: String::new(),
                        ..lead.clone()
                    });
                }
            }
            Some(BadRow::NothingToIdentify) => {
                phone = XCell::Blank;
                id = XCell::Blank;
                manifest
                    .rejected
                    .push((row_number, None, "neither a phone nor a lead id"));
            }
            Some(BadRow::UnreadableTime) => {
                time = XCell::Text("昨天 10:00".into());
                manifest
                    .rejected
                    .push((row_number, Some(column(3)), "not a date and time"));
            }
            Some(BadRow::IdInScientificNotation) => {
                id = XCell::Text(format!("{:.5E}", lead.id.parse::<f64>().unwrap_or_default()).replace('E', "E+"));
                manifest.rejected.push((row_number, Some(column(0)), "Excel"));
            }
            None if style.ids_as_numbers && !style.without_ids => {
                manifest.rejected.push((row_number, Some(column(0)), "as text"));
            }
            None => manifest.valid.push(lead.clone()),
        }
        let text = |v: &Option<String>| v.clone().map_or(XCell::Blank, XCell::Text);
        let mut cells = vec![
            id,
            XCell::Text(lead.name.clone()),
            phone,
            time,
            text(&lead.ad_id),
            text(&lead.store),
            text(&lead.remark),
            XCell::Text(lead.status.clone()),
            XCell::Text(["到店体验", "价格咨询"][i % 2].into()),
        ];
        if style.without_ids {
            cells.remove(0);
        }
        rows.push(cells);
        if style.blank_every.is_some_and(|n| (i + 1) % n == 0) {
            rows.push(vec![XCell::Blank; headers.len()]);
            manifest.blank_rows += 1;
        }
    }
    match style.kind {
        FileKind::Xlsx => {
            let mut book = XlsxWriter::new(out)?;
            for row in &rows {
                book.row(row)?;
            }
            book.finish()?;
        }
        FileKind::CsvUtf8Bom | FileKind::CsvGb18030 => {
            let mut text = String::new();
            for row in &rows {
                let line: Vec<String> = row.iter().map(csv_field).collect();
                text.push_str(&line.join(","));
                text.push_str("\r\n");
            }
            if style.kind == FileKind::CsvUtf8Bom {
                out.write_all(b"\xEF\xBB\xBF")?;
                out.write_all(text.as_bytes())?;
            } else {
                let (bytes, _, _) = encoding_rs::GB18030.encode(&text);
                out.write_all(&bytes)?;
            }
        }
    }
    Ok(manifest)
}

fn csv_field(cell: &XCell) -> String {
    let text = match cell {
        XCell::Blank => String::new(),
        XCell::Text(t) => t.clone(),
        XCell::Number(n) | XCell::DateTime(n) => format!("{n}"),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// A sample file: its name, platform, style, rows and bad rows.
pub type Sample = (String, Platform, Style, Vec<SampleLead>, Vec<(usize, BadRow)>);

/// The sample set: one file per platform with its typical quirks, and a file of numeric ids.
pub fn samples() -> Vec<Sample> {
    let start = sample_start();
    let faults = vec![
        (3, BadRow::MaskedPhone),
        (10, BadRow::NothingToIdentify),
        (17, BadRow::UnreadableTime),
    ];
    vec![
        (
            "laike-客资管理.xlsx".into(),
            Platform::Laike,
            Style {
                title_row: true,
                blank_every: Some(40),
                ..Style::plain(FileKind::Xlsx)
            },
            leads(200, 1, start),
            faults.clone(),
        ),
        (
            "feiyu-线索.csv".into(),
            Platform::Feiyu,
            Style {
                full_width_headers: true,
                blank_every: Some(25),
                ..Style::plain(FileKind::CsvGb18030)
            },
            leads(200, 2, start),
            faults.clone(),
        ),
        (
            "oceanengine-线索.csv".into(),
            Platform::OceanEngine,
            Style::plain(FileKind::CsvUtf8Bom),
            leads(200, 3, start),
            [faults.clone(), vec![(30, BadRow::IdInScientificNotation)]].concat(),
        ),
        (
            "oceanengine-life-本地推.xlsx".into(),
            Platform::OceanEngineLife,
            Style {
                without_ids: true,
                ..Style::plain(FileKind::Xlsx)
            },
            leads(200, 4, start),
            vec![(5, BadRow::MaskedPhone)],
        ),
        (
            "feiyu-ids-as-numbers.xlsx".into(),
            Platform::Feiyu,
            Style {
                ids_as_numbers: true,
                ..Style::plain(FileKind::Xlsx)
            },
            leads(20, 5, start),
            Vec::new(),
        ),
    ]
}
