-- The object store's tag of the version of each build's object that was hashed when the build
-- was recorded (ObjectInfo.etag): a download checks the object still has it (or still hashes
-- to sha256) before it is served. NULL for builds recorded before it existed.

ALTER TABLE app_builds ADD COLUMN etag TEXT;

-- A build is (app, version, file name) whatever its object key: looked up by it on upload.
CREATE INDEX app_builds_named ON app_builds (app, version, file_name);
