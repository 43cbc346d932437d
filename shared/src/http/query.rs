use super::ApiError;
use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;

/// The query string as pairs. A parameter given twice is a 400: which copy wins would be a guess.
#[derive(Debug, Default, Clone)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(ApiError::bad_request(
                    "DUPLICATE_PARAMETER",
                    "query",
                    format!("{k} is given more than once"),
                ));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self(pairs))
    }

    /// Every parameter name given.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// The value of `name` as given, empty included: `startTime=` is a bad time, not no time.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let RawQuery(raw) = RawQuery::from_request_parts(parts, state)
            .await
            .unwrap_or(RawQuery(None));
        Self::parse(raw.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_rejects_duplicates() {
        let q = QueryParams::parse(Some("a=1&b=x%20y&c=")).unwrap();
        assert_eq!(q.get("a"), Some("1"));
        assert_eq!(q.get("b"), Some("x y"));
        assert_eq!(q.get("c"), Some(""), "an empty value is a value");
        let err = QueryParams::parse(Some("a=1&a=2")).unwrap_err();
        assert_eq!(err.error_code, "DUPLICATE_PARAMETER");
    }
}
