-- A replica manifest of schema version 2 (cyrsync sessions 9-12), as its daemon left it: the
-- upgrade to version 3 must keep every entry and folder, with the folders' message digests
-- unknown.
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES('schema_version','2');
INSERT INTO meta VALUES('synced:*','1795000000');
CREATE TABLE entries(
  root TEXT NOT NULL, rel TEXT NOT NULL, owner TEXT NOT NULL, folder_key TEXT NOT NULL,
  kind INTEGER NOT NULL,
  src_size INTEGER NOT NULL, src_mtime INTEGER NOT NULL, src_ctime INTEGER NOT NULL,
  src_ino INTEGER NOT NULL, unsettled INTEGER NOT NULL, index_minor INTEGER NOT NULL,
  loc_size INTEGER NOT NULL, loc_mtime INTEGER NOT NULL, loc_ctime INTEGER NOT NULL,
  loc_ino INTEGER NOT NULL,
  PRIMARY KEY(root, rel)) WITHOUT ROWID;
INSERT INTO entries VALUES('partition-default','uuid/3/3/33svgem7f6p9vzgufxjxmn1e/cyrus.index','alice','33svgem7f6p9vzgufxjxmn1e',0,1120,1795000000123456789,1795000000123456789,4211,0,17,1120,1795000001000000000,1795000001000000000,9001);
INSERT INTO entries VALUES('partition-default','uuid/3/3/33svgem7f6p9vzgufxjxmn1e/cyrus.header','alice','33svgem7f6p9vzgufxjxmn1e',0,160,1795000000000000000,1795000000000000000,4210,1,0,160,1795000001000000000,1795000001000000000,9002);
INSERT INTO entries VALUES('configdirectory','user/a/alice.seen','alice','',1,2048,1795000000000000000,1795000000000000000,5000,0,0,2048,1795000001000000000,1795000001000000000,9003);
CREATE INDEX entries_folder ON entries(folder_key);
CREATE TABLE folders(
  folder_key TEXT PRIMARY KEY, owner TEXT NOT NULL, intname TEXT NOT NULL,
  data_root TEXT NOT NULL, data_rel TEXT NOT NULL,
  archive_root TEXT NOT NULL, archive_rel TEXT NOT NULL);
INSERT INTO folders VALUES('33svgem7f6p9vzgufxjxmn1e','alice','user.alice','partition-default','uuid/3/3/33svgem7f6p9vzgufxjxmn1e','partition-default','uuid/3/3/33svgem7f6p9vzgufxjxmn1e');
CREATE INDEX folders_dir ON folders(data_root, data_rel);
