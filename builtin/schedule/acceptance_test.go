package schedule_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vrsky/vrsky/builtin/schedule"
	"github.com/vrsky/vrsky/runtime/connector"
	"github.com/vrsky/vrsky/runtime/connectortest"
)

func TestAcceptance(t *testing.T) {
	connectortest.RunSource(t, connectortest.SourceCase{
		Connector: schedule.Source,
		Config:    json.RawMessage(`{"cron":"* * * * * *"}`),
		Env:       connector.Env{Tenant: "acme", Integration: "ticks"},
		Bad: []connectortest.BadConfig{
			{Config: json.RawMessage(`{}`), Field: "cron"},
			{Config: json.RawMessage(`{"cron":"not a cron"}`), Field: "cron"},
		},
		Timeout: 5 * time.Second,
	})
}
