//! File import (issue 13, first part): reading the platforms' own lead exports. What a row of a
//! back-office export means is decided here, once: which column is which (Chinese headers,
//! spacing, full-width forms and order tolerated), how a phone, a time and an id are read, and
//! why a row is refused. The routes, the upload and the store writes build on this.

pub mod cells;
pub mod headers;
pub mod text;
