package postgrescdc

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vrsky/vrsky/runtime/connector"
)

// Config configures the postgres-cdc source (cdc.schema.json is its
// schema; the comments here say the same).
type Config struct {
	// DSNEnv names the environment variable that holds the connection
	// string. The role needs REPLICATION (or superuser).
	DSNEnv string `json:"dsn_env"`
	// Publication is read by the slot; created when missing. Default
	// vrsky_<tenant>_<integration>, sanitized.
	Publication string `json:"publication,omitempty"`
	// Slot is the logical replication slot; created when missing.
	// Default like Publication.
	Slot string `json:"slot,omitempty"`
	// Tables the publication covers (table or schema.table); empty means
	// FOR ALL TABLES. Applied to a publication the source created, also
	// when the list changes; an adopted publication is used as it is.
	Tables []string `json:"tables,omitempty"`
	// Snapshot emits the tables' rows once before streaming.
	Snapshot bool `json:"snapshot,omitempty"`
	// KeepSlotOnDelete keeps the slot when the integration is deleted.
	KeepSlotOnDelete bool `json:"keep_slot_on_delete,omitempty"`
	// ResnapshotOnLost recreates an invalidated slot and snapshots again
	// instead of failing.
	ResnapshotOnLost bool `json:"resnapshot_on_lost,omitempty"`
	// Heartbeat is how often a heartbeat is written to the WAL; default
	// 10s, 0 turns it off.
	Heartbeat *connector.Duration `json:"heartbeat,omitempty"`
	// StatusInterval is how often the confirmed position is reported;
	// default 1s.
	StatusInterval *connector.Duration `json:"status_interval,omitempty"`
}

// Defaults for the optional durations.
const (
	DefaultHeartbeat      = 10 * time.Second
	DefaultStatusInterval = time.Second
)

// settings is a Config resolved against its environment: names defaulted,
// the DSN read, tables qualified.
type settings struct {
	Config
	dsn            string
	tables         []tableName
	heartbeat      time.Duration
	statusInterval time.Duration
}

// tableName is a schema-qualified table.
type tableName struct{ Schema, Name string }

func (t tableName) String() string { return t.Schema + "." + t.Name }

// quoted is the table as an SQL identifier.
func (t tableName) quoted() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

func parseTable(s string) tableName {
	if sch, name, ok := strings.Cut(s, "."); ok {
		return tableName{sch, name}
	}
	return tableName{"public", s}
}

// parseConfig decodes and resolves cfg. Errors are *connector.SpecError
// naming the field (wrapped Permanent: no retry fixes a config).
func parseConfig(cfg json.RawMessage, env connector.Env) (*settings, error) {
	var c Config
	if err := json.Unmarshal(cfg, &c); err != nil {
		return nil, &connector.SpecError{Reason: fmt.Sprintf("postgres-cdc config: %v", err)}
	}
	return resolve(c, env)
}

func resolve(c Config, env connector.Env) (*settings, error) {
	s := &settings{Config: c, heartbeat: DefaultHeartbeat, statusInterval: DefaultStatusInterval}
	if c.DSNEnv == "" {
		return nil, &connector.SpecError{Field: "dsn_env", Reason: "is required"}
	}
	s.dsn = os.Getenv(c.DSNEnv)
	if s.dsn == "" {
		return nil, &connector.SpecError{Field: "dsn_env", Reason: fmt.Sprintf("environment variable %s is not set in vrsky's environment", c.DSNEnv)}
	}
	if s.Publication == "" {
		s.Publication = defaultName(env)
	}
	if s.Slot == "" {
		s.Slot = defaultName(env)
	}
	for _, t := range c.Tables {
		s.tables = append(s.tables, parseTable(t))
	}
	if c.Heartbeat != nil {
		s.heartbeat = time.Duration(*c.Heartbeat)
		if s.heartbeat < 0 {
			return nil, &connector.SpecError{Field: "heartbeat", Reason: "must not be negative"}
		}
	}
	if c.StatusInterval != nil {
		s.statusInterval = time.Duration(*c.StatusInterval)
		if s.statusInterval <= 0 {
			return nil, &connector.SpecError{Field: "status_interval", Reason: "must be positive"}
		}
	}
	return s, nil
}

// defaultName is vrsky_<tenant>_<integration>, lowercased, with anything
// but [a-z0-9_] replaced by _, and cut to PostgreSQL's 63-byte limit with
// a hash suffix that keeps long names apart.
func defaultName(env connector.Env) string {
	raw := "vrsky_" + env.Tenant + "_" + env.Integration
	b := []byte(strings.ToLower(raw))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			b[i] = '_'
		}
	}
	if len(b) <= 63 {
		return string(b)
	}
	sum := sha256.Sum256([]byte(raw))
	return string(b[:54]) + "_" + hex.EncodeToString(sum[:4])
}
