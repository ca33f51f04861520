// Package natsx owns VRSky's connection to NATS: it either starts the
// embedded nats-server with JetStream (the single-machine default) or dials
// an external cluster, and hands both out through the same Conn so the rest
// of the platform has one code path.
package natsx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PublishAsyncTimeout bounds how long an asynchronous JetStream publish
// waits for its acknowledgement before its future fails.
const PublishAsyncTimeout = 10 * time.Second

// Options selects and tunes the NATS backend.
type Options struct {
	// URL of an external NATS cluster. Empty starts the embedded server.
	URL string
	// DataDir is where the embedded server keeps JetStream files
	// (DataDir/jetstream). Required when URL is empty.
	DataDir string
	// Listen is the embedded server's client address, "host:port". Empty
	// means loopback on a random free port.
	Listen string
	// SyncAlways makes the embedded server fsync every JetStream write
	// before acknowledging it, instead of on an interval.
	SyncAlways bool
	// Replicas is the stream replication factor platform streams ask for:
	// 1 for the embedded server, 3 for a production cluster. Zero means 1.
	Replicas int
	// Name identifies this process to NATS (connection name).
	Name string
	// Logger receives the embedded server's notices. Nil discards them.
	Logger *slog.Logger
}

// Conn is a live connection to NATS with JetStream. Close releases it and,
// for the embedded backend, shuts the server down.
type Conn struct {
	// NC is the core NATS connection.
	NC *nats.Conn
	// JS is the JetStream context on NC.
	JS jetstream.JetStream
	// Replicas is the replication factor for streams the platform creates.
	Replicas int

	srv *server.Server
}

// Connect starts the embedded server or dials opts.URL and waits until
// JetStream answers.
func Connect(ctx context.Context, opts Options) (*Conn, error) {
	c := &Conn{Replicas: max(opts.Replicas, 1)}
	url := opts.URL
	if url == "" {
		srv, err := startEmbedded(opts)
		if err != nil {
			return nil, err
		}
		c.srv = srv
		url = srv.ClientURL()
	}
	nopts := []nats.Option{
		nats.Name(cmp(opts.Name, "vrsky")),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}
	if c.srv != nil {
		nopts = append(nopts, nats.InProcessServer(c.srv))
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		c.shutdownServer()
		return nil, fmt.Errorf("natsx: connect %s: %w", url, err)
	}
	c.NC = nc
	// Without a timeout, an async publish whose acknowledgement is lost
	// (e.g. with a stream leader that dies) never resolves its future.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(PublishAsyncTimeout))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("natsx: jetstream: %w", err)
	}
	c.JS = js
	if err := c.waitJetStream(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) waitJetStream(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.JS.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("natsx: JetStream not available: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func startEmbedded(opts Options) (*server.Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("natsx: DataDir is required for the embedded server")
	}
	host, port := "127.0.0.1", -1
	if opts.Listen != "" {
		h, p, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsx: listen address %q: %w", opts.Listen, err)
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("natsx: listen port %q: %w", p, err)
		}
		host, port = h, n
	}
	sopts := &server.Options{
		ServerName:         cmp(opts.Name, "vrsky"),
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           filepath.Join(opts.DataDir, "jetstream"),
		SyncAlways:         opts.SyncAlways,
		NoSigs:             true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: -1,
		JetStreamMaxStore:  -1,
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("natsx: embedded server: %w", err)
	}
	if opts.Logger != nil {
		srv.SetLoggerV2(&logAdapter{l: opts.Logger.With("component", "nats-server")}, false, false, false)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("natsx: embedded server did not become ready in 30s")
	}
	return srv, nil
}

// ClientURL is the URL other processes can dial: the external URL, or the
// embedded server's listen address.
func (c *Conn) ClientURL() string {
	if c.srv != nil {
		return c.srv.ClientURL()
	}
	return c.NC.ConnectedUrl()
}

// Embedded reports whether this Conn runs the in-process server.
func (c *Conn) Embedded() bool { return c.srv != nil }

// Ping checks that NATS answers within ctx.
func (c *Conn) Ping(ctx context.Context) error {
	if c.NC == nil || !c.NC.IsConnected() {
		return errors.New("natsx: not connected")
	}
	_, err := c.JS.AccountInfo(ctx)
	return err
}

// Close drains the client connection and stops the embedded server.
func (c *Conn) Close() {
	if c.NC != nil {
		_ = c.NC.Drain()
		// Drain completes asynchronously; wait a bounded time.
		for i := 0; i < 100 && !c.NC.IsClosed(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		c.NC.Close()
	}
	c.shutdownServer()
}

func (c *Conn) shutdownServer() {
	if c.srv != nil {
		c.srv.Shutdown()
		c.srv.WaitForShutdown()
	}
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// logAdapter forwards nats-server's logger to slog.
type logAdapter struct{ l *slog.Logger }

func (a *logAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Tracef(format string, v ...any)  {}
