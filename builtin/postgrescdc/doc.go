// Package postgrescdc holds VRSky's built-in postgres-cdc source: change
// data capture from PostgreSQL by logical replication with the pgoutput
// plugin.
//
// The source owns a publication and a replication slot (created on first
// start, or adopted when they exist). It optionally reads the published
// tables first, from the snapshot the slot exported when it was created,
// so that the snapshot and the stream neither overlap nor leave a gap.
// Then it streams every committed insert, update and delete as one JSON
// message, transactions in commit order.
//
// # Messages
//
//	{"op":"update","schema":"public","table":"orders",
//	 "before":{"id":1},                      // the replica identity's columns, when PostgreSQL sends them
//	 "after":{"id":1,"total":"12.50","note":"x"},
//	 "unchanged":["big_text"],               // TOASTed columns the change left as they were
//	 "lsn":"0/1A2B3C8","commit_lsn":"0/1A2B400","commit_time":"2026-01-02T15:04:05.123456Z","xid":742}
//
// op is insert, update, delete, truncate (schema and table only) or
// snapshot (a row of the initial snapshot: after only, lsn is the slot's
// consistent point). lsn is the change's own WAL position, commit_lsn its
// transaction's.
//
// Columns are decoded by their type OID: integers and floats are JSON
// numbers (NaN and ±Infinity are strings), bool is true/false, json and
// jsonb are embedded as JSON, numeric is a string (exact: a JSON number
// would lose digits in most readers), bytea is base64, arrays and the
// other types pgx knows are what pgx decodes them to, rendered as JSON;
// anything else (enums, domains of unknown base, PostGIS, …) is the
// PostgreSQL text form as a string. SQL NULL is null.
//
// # Delivery
//
// Message ids are derived from the change's position (the transaction's
// commit LSN and the change's index in it; the consistent point, table
// and row number for snapshot rows), so changes replayed after a crash
// are dropped by JetStream's duplicate window. The slot's confirmed flush
// position only moves past a transaction once JetStream has acknowledged
// all of its messages: a crash replays, it never loses. See RATIONALE.md.
package postgrescdc
