// Package postgres holds VRSky's built-in postgres sink, which writes JSON
// messages as rows of a PostgreSQL table.
//
// Each batch is one transaction. In insert mode the rows go in with COPY
// (pgx CopyFrom, binary format); in upsert mode they are copied into a
// temporary table and moved with INSERT ... SELECT ... ON CONFLICT (key)
// DO UPDATE, the last row winning when a key repeats within a batch. With
// id_column set, the message id (the pipeline's idempotency key) fills
// that column, so each message is written once even when it is delivered
// twice: upsert on it, or in insert mode give it a unique index (a row
// that collides on that index is a redelivery and counts as delivered).
//
// Messages: a JSON object is one row; an array of objects is several rows
// of the same message (all or none of them are written). Fields map to
// columns by name, or through the columns config (column → dotted JSON
// path). Values are converted to the column's type, read from the
// catalogue on first use: JSON numbers, strings (CSV cells: "42",
// "2024-01-02", "true", "\x0102" or base64 for bytea) and booleans; objects
// and arrays go to json/jsonb (a string holding a JSON object or array
// goes in as that document). A value that cannot be converted fails its
// message permanently, naming the field and the column type.
//
// Missing and empty values, decided so that CSV and JSON sources behave
// alike:
//   - a field that is absent takes the column's default (NULL when it has
//     none), as an INSERT that omits the column would: rows are grouped
//     by the set of fields they carry, one COPY per group. In upsert mode
//     an absent field leaves the stored value alone;
//   - JSON null is SQL NULL;
//   - an empty string is NULL for every non-text column, "" for text;
//   - unknown fields are ignored.
//
// Column types: smallint, integer, bigint, real, double precision,
// numeric, boolean, text, varchar, char, date, timestamp, timestamptz,
// uuid, json, jsonb, bytea, and domains over them. A timestamp without a
// zone is UTC for timestamptz; a timestamp column keeps the wall clock and
// drops the zone, as PostgreSQL does. The automatic mapping leaves out
// columns of other types and generated columns (logged once); naming one
// in columns is a config error.
//
// Check (at create and update) connects with the DSN, and reports on the
// config field to fix: a missing table, a missing or unwritable column, a
// NOT NULL column without a default that columns leaves out, an upsert key
// without a primary key or unique index on exactly those columns.
//
// Errors: when PostgreSQL rejects the batch's data (SQLSTATE class 22 or
// 23: a NOT NULL, CHECK, unique or foreign key violation, a value out of
// range), the batch is written again in a new transaction, bisected inside
// savepoints until each bad message stands alone; those fail permanently
// (to the dead-letter queue) and the rest are committed. Any other error
// (connection refused, serialization failure, timeout) fails the whole
// batch with a retryable error.
package postgres
