//! The msrc importer on the fixtures in tests/fixtures/catalog/msrc/ and, when ../shared/feeds is there, on the real feed files.
