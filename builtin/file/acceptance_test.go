package file_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fileconn "github.com/vrsky/vrsky/builtin/file"
	"github.com/vrsky/vrsky/runtime/connector"
	"github.com/vrsky/vrsky/runtime/connectortest"
)

func TestSinkAcceptance(t *testing.T) {
	dir := t.TempDir()
	connectortest.RunSink(t, connectortest.SinkCase{
		Connector: fileconn.Sink,
		Config:    json.RawMessage(fmt.Sprintf(`{"dir":%q}`, dir)),
		Bad: []connectortest.BadConfig{
			{Config: json.RawMessage(`{}`), Field: "dir"},
			{Config: json.RawMessage(fmt.Sprintf(`{"dir":%q,"filename":"{{.ID"}`, dir)), Field: "filename"},
		},
		Delivered: func(t *testing.T) []string {
			es, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range es {
				names = append(names, e.Name())
			}
			return names
		},
		Key: func(m *connector.Message) string { return m.ID + ".json" },
	})
}

func TestSourceAcceptance(t *testing.T) {
	dir := t.TempDir()
	connectortest.RunSource(t, connectortest.SourceCase{
		Connector: fileconn.Source,
		Config:    json.RawMessage(fmt.Sprintf(`{"dir":%q,"stable_for":"50ms","rescan_interval":"100ms"}`, dir)),
		Env:       connector.Env{Tenant: "acme", Integration: "files"},
		Bad:       []connectortest.BadConfig{{Config: json.RawMessage(`{"dir":""}`), Field: "dir"}, {Config: json.RawMessage(`{"dir":"/tmp","mode":"x"}`), Field: "mode"}},
		Produce: func(t *testing.T, round, n int) {
			for i := range n {
				name := filepath.Join(dir, fmt.Sprintf("r%d-%d.json", round, i))
				if err := os.WriteFile(name, []byte(`{"i":`+strings.Repeat("1", i+1)+`}`), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		},
		N:       2,
		Timeout: 10 * time.Second,
	})
}
