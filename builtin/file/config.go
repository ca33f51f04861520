package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/vrsky/vrsky/runtime/connector"
)

// Source modes.
const (
	ModeWhole = "whole"
	ModeLines = "lines"
	ModeCSV   = "csv"
	ModeJSONL = "jsonl"
)

// SourceConfig configures the file source; source.schema.json documents
// each field for users.
type SourceConfig struct {
	// Dir is the directory watched (not recursive); it must exist.
	Dir string `json:"dir"`
	// Pattern is the glob a file name must match; default "*".
	Pattern string `json:"pattern,omitempty"`
	// Mode is whole (default), lines, csv or jsonl.
	Mode string `json:"mode,omitempty"`
	// CSV holds the options of mode csv.
	CSV CSVConfig `json:"csv,omitzero"`
	// StableFor is how long size and mtime must stay unchanged; default 1s.
	StableFor connector.Duration `json:"stable_for,omitempty"`
	// RescanInterval is how often the directory is listed; default 5s.
	RescanInterval connector.Duration `json:"rescan_interval,omitempty"`
	// ProcessedDir receives files whose records are all durable; default
	// "processed", relative to Dir.
	ProcessedDir string `json:"processed_dir,omitempty"`
	// FailedDir receives files that could not be parsed, with a sidecar;
	// default "failed", relative to Dir.
	FailedDir string `json:"failed_dir,omitempty"`
	// RecordsPerMessage groups records into JSON arrays; default 1 (none).
	RecordsPerMessage int `json:"records_per_message,omitempty"`
	// MaxFileSize bounds a file in mode whole; default 64 MiB.
	MaxFileSize int64 `json:"max_file_size,omitempty"`
	// MaxRecordBytes bounds one line or CSV row; default 1 MiB.
	MaxRecordBytes int `json:"max_record_bytes,omitempty"`
}

// CSVConfig holds the options of mode csv.
type CSVConfig struct {
	// Delimiter separates fields; default ",".
	Delimiter string `json:"delimiter,omitempty"`
}

// parseSourceConfig decodes cfg strictly, applies defaults and validates.
func parseSourceConfig(cfg json.RawMessage) (SourceConfig, error) {
	var c SourceConfig
	if err := decodeStrict(cfg, &c); err != nil {
		return c, fmt.Errorf("file source config: %w", err)
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("file source config: %w", err)
	}
	return c, nil
}

func (c *SourceConfig) setDefaults() {
	if c.Pattern == "" {
		c.Pattern = "*"
	}
	if c.Mode == "" {
		c.Mode = ModeWhole
	}
	if c.CSV.Delimiter == "" {
		c.CSV.Delimiter = ","
	}
	if c.StableFor == 0 {
		c.StableFor = connector.Duration(time.Second)
	}
	if c.RescanInterval == 0 {
		c.RescanInterval = connector.Duration(5 * time.Second)
	}
	if c.ProcessedDir == "" {
		c.ProcessedDir = "processed"
	}
	if c.FailedDir == "" {
		c.FailedDir = "failed"
	}
	if c.RecordsPerMessage == 0 {
		c.RecordsPerMessage = 1
	}
	if c.MaxFileSize == 0 {
		c.MaxFileSize = 64 << 20
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = 1 << 20
	}
}

// Validate reports the first field that is wrong, as a *connector.SpecError.
func (c *SourceConfig) Validate() error {
	bad := func(field, format string, a ...any) error {
		return &connector.SpecError{Field: field, Reason: fmt.Sprintf(format, a...)}
	}
	if c.Dir == "" {
		return bad("dir", "is required")
	}
	if _, err := filepath.Match(c.Pattern, ""); err != nil {
		return bad("pattern", "not a valid glob: %v", err)
	}
	switch c.Mode {
	case ModeWhole, ModeLines, ModeCSV, ModeJSONL:
	default:
		return bad("mode", "must be whole, lines, csv or jsonl, not %q", c.Mode)
	}
	if r, n := utf8.DecodeRuneInString(c.CSV.Delimiter); n != len(c.CSV.Delimiter) || r == utf8.RuneError ||
		r == '"' || r == '\r' || r == '\n' {
		return bad("csv.delimiter", "must be one character other than a quote or a line break, not %q", c.CSV.Delimiter)
	}
	if c.StableFor < 0 {
		return bad("stable_for", "must not be negative")
	}
	if c.RescanInterval <= 0 {
		return bad("rescan_interval", "must be positive")
	}
	if c.RecordsPerMessage < 1 || c.RecordsPerMessage > 10000 {
		return bad("records_per_message", "must be between 1 and 10000, not %d", c.RecordsPerMessage)
	}
	if c.MaxFileSize < 1 {
		return bad("max_file_size", "must be positive")
	}
	if c.MaxRecordBytes < 1 {
		return bad("max_record_bytes", "must be positive")
	}
	if c.resolve(c.ProcessedDir) == filepath.Clean(c.Dir) {
		return bad("processed_dir", "must not be the watched directory itself")
	}
	if c.resolve(c.FailedDir) == filepath.Clean(c.Dir) {
		return bad("failed_dir", "must not be the watched directory itself")
	}
	return nil
}

// resolve makes p absolute against Dir when it is relative.
func (c *SourceConfig) resolve(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(c.Dir, p)
}

// SinkConfig configures the file sink; sink.schema.json documents each
// field for users.
type SinkConfig struct {
	// Dir receives the files.
	Dir string `json:"dir"`
	// Filename is a text/template giving each file's path relative to Dir;
	// default "{{.ID}}.json". It may use only what filename.go lists, and
	// produce at most MaxFilenameBytes.
	Filename string `json:"filename,omitempty"`
	// Overwrite replaces an existing file; by default one with other
	// content is a permanent error.
	Overwrite bool `json:"overwrite,omitempty"`
	// CreateDir creates Dir (and sub-directories named by Filename) when
	// missing; default true.
	CreateDir *bool `json:"create_dir,omitempty"`
}

func parseSinkConfig(cfg json.RawMessage) (SinkConfig, *template.Template, error) {
	var c SinkConfig
	if err := decodeStrict(cfg, &c); err != nil {
		return c, nil, fmt.Errorf("file sink config: %w", err)
	}
	if c.Filename == "" {
		c.Filename = "{{.ID}}.json"
	}
	if c.CreateDir == nil {
		t := true
		c.CreateDir = &t
	}
	if c.Dir == "" {
		return c, nil, &connector.SpecError{Field: "dir", Reason: "is required"}
	}
	tpl, err := parseFilename(c.Filename)
	if err != nil {
		return c, nil, err
	}
	return c, tpl, nil
}

func decodeStrict(cfg json.RawMessage, v any) error {
	if len(bytes.TrimSpace(cfg)) == 0 {
		cfg = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(cfg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the config object")
	}
	return nil
}
