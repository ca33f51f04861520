// Package file holds VRSky's built-in file connectors.
//
// The file source (Source) watches one directory, with fsnotify and a
// periodic rescan, and turns each regular file that matches its glob into
// messages once the file has stopped changing: the whole file as one
// message, or one record per line, CSV row or JSON line. A file moves to
// processed/ once every record is durable, or to failed/ beside a
// <name>.error sidecar when a record cannot be parsed. Message ids are
// derived from the file's identity (name, size, mtime) and the record
// number, and a checkpoint in the connector state records how far the
// file got, so a restart resumes without losing or (within JetStream's
// dedup window) duplicating records. Messages carry Vrsky-File-Name,
// Vrsky-File-Record (the number of their first record) and, when they
// hold a JSON array of records, Vrsky-File-Records. RATIONALE.md explains
// the choices.
//
// The file sink (Sink) writes each message to its own file, atomically
// (a temporary file, fsync, then a link or rename into place), under a
// name made from a template. It never replaces a file with different
// content unless told to, so a redelivery is idempotent.
//
// Both connectors are named "file": one is a source, the other a sink.
package file
