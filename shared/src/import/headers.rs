//! Which column of an export is which field. Each field has the headers the platforms' back
//! offices write (抖音来客 客资管理, 飞鱼CRM, 巨量引擎); a header is compared after trimming,
//! half-widthing, dropping spaces and case. A request may map headers itself.

use super::text::half_width;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    LeadId,
    Name,
    Phone,
    CreatedAt,
    AdId,
    Store,
    Remark,
    Status,
    Source,
}

impl Field {
    pub const ALL: [Field; 9] = [
        Field::LeadId,
        Field::Name,
        Field::Phone,
        Field::CreatedAt,
        Field::AdId,
        Field::Store,
        Field::Remark,
        Field::Status,
        Field::Source,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LeadId => "leadId",
            Self::Name => "name",
            Self::Phone => "phone",
            Self::CreatedAt => "createdAt",
            Self::AdId => "adId",
            Self::Store => "store",
            Self::Remark => "remark",
            Self::Status => "status",
            Self::Source => "source",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == raw)
    }

    /// The headers the back offices use for it (documented defaults).
    pub fn default_headers(self) -> &'static [&'static str] {
        match self {
            Self::LeadId => &["线索ID", "线索id", "客资ID", "线索编号", "clue_id"],
            Self::Name => &["客户姓名", "姓名", "名称", "客户名称", "name"],
            Self::Phone => &[
                "手机号",
                "电话",
                "联系电话",
                "客户电话",
                "客户手机号",
                "手机号码",
                "电话号码",
                "telephone",
                "phone",
            ],
            Self::CreatedAt => &["留资时间", "创建时间", "提交时间", "线索创建时间", "create_time"],
            Self::AdId => &["广告ID", "计划ID", "单元ID", "广告计划ID", "广告单元ID", "ad_id"],
            Self::Store => &["门店", "门店名称", "store"],
            Self::Remark => &["留言", "备注", "remark"],
            Self::Status => &["线索状态", "跟进状态", "status"],
            Self::Source => &["来源", "线索来源", "source"],
        }
    }
}

/// A header as compared: half-width, no spaces, lower case.
pub fn canonical(header: &str) -> String {
    half_width(header)
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Where each field is in a header row: the request's own mapping first (field → header), then
/// the defaults. A header is used for one field only; unknown headers are ignored.
pub fn locate(header_row: &[String], overrides: &HashMap<Field, String>) -> HashMap<Field, usize> {
    let columns: Vec<String> = header_row.iter().map(|h| canonical(h)).collect();
    let mut found = HashMap::new();
    let mut taken = vec![false; columns.len()];
    let mut claim = |field: Field, wanted: &str, found: &mut HashMap<Field, usize>| {
        let wanted = canonical(wanted);
        if found.contains_key(&field) {
            return;
        }
        if let Some(i) = columns.iter().enumerate().position(|(i, c)| !taken[i] && *c == wanted) {
            taken[i] = true;
            found.insert(field, i);
        }
    };
    for (field, header) in overrides {
        claim(*field, header, &mut found);
    }
    for field in Field::ALL {
        for header in field.default_headers() {
            claim(field, header, &mut found);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn each_back_offices_headers_are_found_in_any_order_and_spelling() {
        let laike = row(&["客资ID", " 客户姓名 ", "手机号\u{3000}", "留资时间", "门店", "备注"]);
        let found = locate(&laike, &HashMap::new());
        assert_eq!(found[&Field::LeadId], 0);
        assert_eq!(found[&Field::Name], 1);
        assert_eq!(found[&Field::Phone], 2, "an ideographic space does not hide it");
        assert_eq!(found[&Field::CreatedAt], 3);
        let feiyu = row(&["联系电话", "姓名", "创建时间", "线索ID", "计划ID"]);
        let found = locate(&feiyu, &HashMap::new());
        assert_eq!(
            (found[&Field::Phone], found[&Field::LeadId], found[&Field::AdId]),
            (0, 3, 4)
        );
        let full_width = row(&["线索ＩＤ", "电话"]);
        assert_eq!(locate(&full_width, &HashMap::new())[&Field::LeadId], 0);
    }

    #[test]
    fn a_requests_mapping_comes_first_and_a_column_serves_one_field() {
        let header = row(&["电话", "联系电话", "客户"]);
        let overrides = HashMap::from([(Field::Phone, "联系电话".to_owned()), (Field::Name, "客户".to_owned())]);
        let found = locate(&header, &overrides);
        assert_eq!((found[&Field::Phone], found[&Field::Name]), (1, 2));
        assert!(!found.contains_key(&Field::LeadId));
    }
}
