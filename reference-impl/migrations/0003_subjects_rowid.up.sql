-- Reshape `subjects` the SQLite way (new table, copy, drop, rename): a surrogate integer key,
-- with the principal demoted to a UNIQUE column. `principal`, `sub` and `created_at` are copied
-- verbatim: a principal's `sub` must never change across a migration. No foreign key refers to
-- `subjects`, so the rebuild runs inside the migration's transaction with foreign keys on.

CREATE TABLE subjects_v3 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    principal  TEXT NOT NULL UNIQUE,
    sub        TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

INSERT INTO subjects_v3 (principal, sub, created_at)
    SELECT principal, sub, created_at FROM subjects ORDER BY created_at, principal;

DROP TABLE subjects;

ALTER TABLE subjects_v3 RENAME TO subjects;
