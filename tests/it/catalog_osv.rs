//! The osv importer on the fixtures in tests/fixtures/catalog/osv/ and, when ../shared/feeds is there, on the real feed files.
