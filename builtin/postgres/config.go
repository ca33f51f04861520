package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vrsky/vrsky/runtime/connector"
)

// Modes of the sink.
const (
	ModeInsert = "insert"
	ModeUpsert = "upsert"
)

// Config configures the postgres sink (sink.schema.json is its schema).
type Config struct {
	// DSNEnv names the environment variable holding the connection string.
	DSNEnv string `json:"dsn_env"`
	// Schema of the target table; default "public".
	Schema string `json:"schema,omitempty"`
	// Table is the target table.
	Table string `json:"table"`
	// Mode is ModeInsert (default) or ModeUpsert.
	Mode string `json:"mode,omitempty"`
	// Key lists the conflict columns in upsert mode; default [IDColumn].
	Key []string `json:"key,omitempty"`
	// Columns maps column name to JSON field (a dotted path). Empty means
	// every insertable column from the top-level field of the same name.
	Columns map[string]string `json:"columns,omitempty"`
	// IDColumn, when set, receives the message id.
	IDColumn string `json:"id_column,omitempty"`
	// BatchSize is the most messages per transaction; default 1000.
	BatchSize int `json:"batch_size,omitempty"`
	// MaxWait is how long a batch may wait to fill; default 50ms.
	MaxWait connector.Duration `json:"max_wait,omitempty"`
	// Concurrency is the number of parallel batches and pooled
	// connections; default 4.
	Concurrency int `json:"concurrency,omitempty"`
}

// parseConfig decodes raw strictly, applies the defaults and validates.
// Its errors are *connector.SpecError.
func parseConfig(raw json.RawMessage) (Config, error) {
	var c Config
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, &connector.SpecError{Field: "", Reason: fmt.Sprintf("postgres sink config: %v", err)}
	}
	c.setDefaults()
	return c, c.Validate()
}

func (c *Config) setDefaults() {
	if c.Schema == "" {
		c.Schema = "public"
	}
	if c.Mode == "" {
		c.Mode = ModeInsert
	}
	if c.Mode == ModeUpsert && len(c.Key) == 0 && c.IDColumn != "" {
		c.Key = []string{c.IDColumn}
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.MaxWait == 0 {
		c.MaxWait = connector.Duration(50 * time.Millisecond)
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
}

// Validate checks the config on its own (Check compares it with the
// table). It returns a *connector.SpecError naming the field.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &connector.SpecError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case c.DSNEnv == "":
		return bad("dsn_env", "is required")
	case c.Table == "":
		return bad("table", "is required")
	case c.Mode != ModeInsert && c.Mode != ModeUpsert:
		return bad("mode", "must be %q or %q, not %q", ModeInsert, ModeUpsert, c.Mode)
	case c.Mode == ModeUpsert && len(c.Key) == 0:
		return bad("key", "upsert mode needs key columns (or id_column)")
	case c.Mode == ModeInsert && len(c.Key) > 0:
		return bad("key", "is only used in upsert mode")
	case c.BatchSize < 1 || c.BatchSize > 100000:
		return bad("batch_size", "must be between 1 and 100000")
	case c.MaxWait < 0:
		return bad("max_wait", "must not be negative")
	case c.Concurrency < 1 || c.Concurrency > 64:
		return bad("concurrency", "must be between 1 and 64")
	}
	if c.IDColumn != "" {
		if _, ok := c.Columns[c.IDColumn]; ok {
			return bad("columns."+c.IDColumn, "is the id_column; it holds the message id and cannot also map a field")
		}
	}
	for col, field := range c.Columns {
		if col == "" {
			return bad("columns", "a column name is empty")
		}
		if slices.Contains(strings.Split(field, "."), "") {
			return bad("columns."+col, "field path %q has an empty part", field)
		}
	}
	for i, k := range c.Key {
		if slices.Contains(c.Key[:i], k) {
			return bad(fmt.Sprintf("key[%d]", i), "column %q is listed twice", k)
		}
		if len(c.Columns) > 0 && k != c.IDColumn {
			if _, ok := c.Columns[k]; !ok {
				return bad(fmt.Sprintf("key[%d]", i), "column %q is neither in columns nor the id_column", k)
			}
		}
	}
	return nil
}

// dsn reads the connection string from the environment.
func (c *Config) dsn() (string, error) {
	v := os.Getenv(c.DSNEnv)
	if v == "" {
		return "", &connector.SpecError{Field: "dsn_env", Reason: fmt.Sprintf("environment variable %s is not set", c.DSNEnv)}
	}
	return v, nil
}
