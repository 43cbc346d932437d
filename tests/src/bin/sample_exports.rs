//! Writes the sample back-office exports into a directory (`scripts/sample-exports [dir]`, by
//! default `target/sample-exports`): one per platform with its quirks, and `laike-100k.xlsx`.

use devkit::sample_exports::{self, FileKind, Platform, Style};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/sample-exports".into());
    std::fs::create_dir_all(&dir)?;
    for (name, platform, style, leads, faults) in sample_exports::samples() {
        let path = std::path::Path::new(&dir).join(&name);
        let mut file = std::fs::File::create(&path)?;
        let manifest = sample_exports::write(platform, style, &leads, &faults, &mut file)?;
        println!(
            "{}  source={}  rows={}  valid={}  rejected={}  blank={}",
            path.display(),
            platform.source().as_str(),
            leads.len(),
            manifest.valid.len(),
            manifest.rejected.len(),
            manifest.blank_rows
        );
    }
    let path = std::path::Path::new(&dir).join("laike-100k.xlsx");
    let leads = sample_exports::leads(100_000, 100, sample_exports::sample_start());
    let style = Style {
        blank_every: Some(1000),
        ..Style::plain(FileKind::Xlsx)
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    sample_exports::write(Platform::Laike, style, &leads, &[], &mut file)?;
    println!("{}  source=laike  rows=100000", path.display());
    Ok(())
}
