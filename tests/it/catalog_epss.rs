//! The epss importer on the fixtures in tests/fixtures/catalog/epss/ and, when ../shared/feeds is there, on the real feed files.
