-- Rebuild the version-2 shape of `subjects` (principal as the primary key), copying
-- `principal`, `sub` and `created_at` verbatim; the surrogate `id` is dropped.

CREATE TABLE subjects_v2 (
    principal  TEXT PRIMARY KEY NOT NULL,
    sub        TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

INSERT INTO subjects_v2 (principal, sub, created_at)
    SELECT principal, sub, created_at FROM subjects;

DROP TABLE subjects;

ALTER TABLE subjects_v2 RENAME TO subjects;
