-- A publish run's generate options (maintainer, description, license, url, categories, which
-- file), as POST /api/publish/publish takes them: JSON text; older runs have none.
ALTER TABLE publish_runs ADD COLUMN options TEXT;
