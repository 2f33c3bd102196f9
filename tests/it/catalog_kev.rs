//! The kev importer on the fixtures in tests/fixtures/catalog/kev/ and, when ../shared/feeds is there, on the real feed files.
