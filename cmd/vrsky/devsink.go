package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

// devSinkFlags are `vrsky dev-sink`'s settings.
type devSinkFlags struct {
	listen  string
	status  int
	maxBody int
}

// newDevSinkCmd is `vrsky dev-sink`: an HTTP receiver to point sinks at
// while trying VRSky out. It answers every request with one status and
// prints each request to stdout.
func newDevSinkCmd() *cobra.Command {
	var f devSinkFlags
	cmd := &cobra.Command{
		Use:   "dev-sink",
		Short: "Run a test HTTP receiver that prints every request it gets (for trying out http sinks)",
		Long: `dev-sink answers every request with --status (200: delivered) and prints it to
stdout as a block: the method and path, the headers VRSky sends (Content-Type,
Idempotency-Key, ...), and the body. Give it a 5xx status to watch VRSky retry
and dead-letter, a 4xx one to see a permanent failure. Ctrl-C stops it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.status < 200 || f.status > 599 {
				return fmt.Errorf("--status %d: want an HTTP status from 200 to 599", f.status)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ln, err := net.Listen("tcp", f.listen)
			if err != nil {
				return fmt.Errorf("--listen %s: %w", f.listen, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "dev-sink: listening on http://%s, answering %d %s to every request\n",
				ln.Addr(), f.status, http.StatusText(f.status))
			return runDevSink(ctx, ln, newDevSink(cmd.OutOrStdout(), ln.Addr().String(), f))
		},
	}
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:9000", "address to listen on")
	cmd.Flags().IntVar(&f.status, "status", http.StatusOK, "HTTP status to answer every request with (a 5xx is retried by VRSky, a 4xx other than 408 and 429 dead-lettered at once)")
	cmd.Flags().IntVar(&f.maxBody, "max-body", 64<<10, "print at most this many bytes of a body")
	return cmd
}

// runDevSink serves h on ln until ctx ends.
func runDevSink(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shCtx)
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// devSink prints each request to out and answers it with status.
type devSink struct {
	mu      sync.Mutex // one block at a time
	out     io.Writer
	addr    string
	status  int
	maxBody int
}

func newDevSink(out io.Writer, addr string, f devSinkFlags) *devSink {
	return &devSink{out: out, addr: addr, status: f.status, maxBody: max(f.maxBody, 0)}
}

// devSinkHeaders are the request headers a block shows, in this order,
// when present: what VRSky's http sink sends (Vrsky-Msg-Id is the same as
// Idempotency-Key), and the usual authentication headers (redacted).
// Headers starting with X- are shown too: a sink config's own.
var devSinkHeaders = []string{"Content-Type", "Idempotency-Key", "Vrsky-Batch-Size", "Traceparent", "Authorization"}

func (d *devSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(d.maxBody)+1))
	rest, _ := io.Copy(io.Discard, r.Body)
	var b bytes.Buffer
	fmt.Fprintf(&b, "==> %s %s  (to %s, answered %d)\n", r.Method, r.URL.RequestURI(), d.addr, d.status)
	for _, name := range devSinkHeaders {
		if v := r.Header.Get(name); v != "" {
			if name == "Authorization" {
				v, _, _ = strings.Cut(v, " ")
				v += " (redacted)"
			}
			fmt.Fprintf(&b, "%s: %s\n", name, v)
		}
	}
	var custom []string
	for name := range r.Header {
		if strings.HasPrefix(name, "X-") {
			custom = append(custom, name)
		}
	}
	slices.Sort(custom)
	for _, name := range custom {
		fmt.Fprintf(&b, "%s: %s\n", name, strings.Join(r.Header[name], ", "))
	}
	b.WriteString("\n")
	n := int64(len(body))
	if n > int64(d.maxBody) {
		body, rest = body[:d.maxBody], rest+n-int64(d.maxBody)
	}
	if rest > 0 { // cut: the last character may be incomplete
		for i := 0; i < utf8.UTFMax && len(body) > 0 && !utf8.Valid(body); i++ {
			body, rest = body[:len(body)-1], rest+1
		}
	}
	switch {
	case err != nil:
		fmt.Fprintf(&b, "(the body could not be read: %v)\n", err)
	case len(body) == 0:
		b.WriteString("(no body)\n")
	case !utf8.Valid(body) || bytes.IndexByte(body, 0) >= 0:
		fmt.Fprintf(&b, "(%d bytes, not text)\n", int64(len(body))+rest)
	default:
		b.Write(body)
		if rest > 0 {
			fmt.Fprintf(&b, "… (%d bytes more)", rest)
		}
		if len(body) > 0 && body[len(body)-1] != '\n' || rest > 0 {
			b.WriteString("\n")
		}
	}
	b.WriteString("\n")
	d.mu.Lock()
	_, _ = d.out.Write(b.Bytes())
	d.mu.Unlock()
	if d.status >= 300 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(d.status)
		fmt.Fprintf(w, "vrsky dev-sink answers %d to every request (--status)\n", d.status)
		return
	}
	w.WriteHeader(d.status)
}
