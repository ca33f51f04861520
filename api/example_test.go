package api_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/vrsky/vrsky/api"
	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/tenancy"
	"github.com/vrsky/vrsky/runtime"
)

// Wiring the API: embedded NATS, the NATS KV store, the engine with the
// built-in connectors, and the server. Here the requests go through
// App().Test; a binary calls Listen instead.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "vrsky-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	conn, err := natsx.Connect(ctx, natsx.Options{DataDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	st, err := store.NewNATS(ctx, conn.JS, conn.Replicas)
	if err != nil {
		log.Fatal(err)
	}
	cat, err := runtime.NewCatalog(httpconn.Webhook, httpconn.Sink)
	if err != nil {
		log.Fatal(err)
	}
	tenants := tenancy.New(conn, st, nil) // each tenant's own NATS account
	defer tenants.Close()
	eng, err := runtime.NewEngine(runtime.Config{Conn: conn, Tenancy: tenants, Store: st, Catalog: cat})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.StopAll()
	srv, err := api.New(api.Config{Store: st, Engine: eng, NATS: conn, Tenancy: tenants, AdminKey: "s3cret-admin-key"})
	if err != nil {
		log.Fatal(err)
	}

	req := httptest.NewRequest("POST", "/api/v1/tenants", strings.NewReader(`{"name":"acme"}`))
	req.Header.Set("Authorization", "Bearer s3cret-admin-key")
	req.Header.Set("Content-Type", "application/json")
	res, err := srv.App().Test(req, -1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status)

	req = httptest.NewRequest("GET", "/api/v1/tenants/acme", nil)
	res, err = srv.App().Test(req, -1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, res.Header.Get("WWW-Authenticate"))
	// Output:
	// 201 Created
	// 401 Unauthorized Bearer realm="vrsky"
}
