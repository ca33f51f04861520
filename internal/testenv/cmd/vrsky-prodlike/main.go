// Command vrsky-prodlike starts the production backends on this machine the
// way the tests do — a PostgreSQL cluster from the system's binaries and
// Versity's S3 gateway — and runs a command (normally `vrsky serve`) against
// them, so a user can see VRSky's production shape on one machine:
//
//	go run ./internal/testenv/cmd/vrsky-prodlike -- ./bin/vrsky serve
//
// The command gets VRSKY_DATABASE_URL, VRSKY_S3_ENDPOINT, VRSKY_S3_BUCKET,
// VRSKY_S3_PATH_STYLE and the standard AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_REGION in its environment. Without a
// command it prints them and waits for Ctrl-C. Both servers stop when the
// command exits; their data lives in a temp dir, or in -dir to keep it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vrsky/vrsky/internal/testenv/pgcluster"
	"github.com/vrsky/vrsky/internal/testenv/s3test"
)

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vrsky-prodlike:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run() (int, error) {
	dir := flag.String("dir", "", "keep PostgreSQL and S3 data here across runs (default: a temp dir, removed at exit)")
	pgPort := flag.Int("pg-port", 0, "PostgreSQL port on 127.0.0.1 (default: a free port)")
	s3Port := flag.Int("s3-port", 0, "S3 port on 127.0.0.1 (default: a free port)")
	bucket := flag.String("bucket", "vrsky", "S3 bucket for VRSky's objects (vrsky creates it)")
	database := flag.String("database", "vrsky", "PostgreSQL database for the control plane")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: vrsky-prodlike [flags] [-- command args...]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	pgOpts, s3Opts := pgcluster.ClusterOptions{Port: *pgPort}, s3test.ServerOptions{Port: *s3Port}
	if *dir != "" {
		pgOpts.Dir, s3Opts.Dir = filepath.Join(*dir, "postgres"), filepath.Join(*dir, "s3")
		s3Opts.AccessKey, s3Opts.SecretKey = "vrsky-prodlike", "vrsky-prodlike-secret"
	}

	slog.Info("starting PostgreSQL")
	pg, err := pgcluster.StartClusterWith(pgOpts)
	if err != nil {
		return 1, err
	}
	defer func() {
		if err := pg.Close(); err != nil {
			slog.Error("stop PostgreSQL", "err", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	dsn, err := pg.EnsureDatabase(ctx, *database)
	cancel()
	if err != nil {
		return 1, err
	}

	slog.Info("starting the S3 server (versitygw)")
	s3, err := s3test.StartServerWith(s3Opts)
	if err != nil {
		return 1, err
	}
	defer func() {
		if err := s3.Close(); err != nil {
			slog.Error("stop versitygw", "err", err)
		}
	}()
	cfg := s3.Config(*bucket)

	env := []string{
		"VRSKY_DATABASE_URL=" + dsn,
		"VRSKY_S3_ENDPOINT=" + cfg.Endpoint,
		"VRSKY_S3_BUCKET=" + cfg.Bucket,
		"VRSKY_S3_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + cfg.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + cfg.SecretKey,
		"AWS_REGION=" + cfg.Region,
	}
	fmt.Printf("PostgreSQL  %s\nS3          %s (bucket %s, path-style)\n\n", dsn, cfg.Endpoint, cfg.Bucket)
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		fmt.Printf("export %s='%s'\n", k, v)
	}
	fmt.Println()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	if flag.NArg() == 0 {
		fmt.Println("Backends running; Ctrl-C stops them.")
		<-sigs
		return 0, nil
	}
	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("start %s: %w", flag.Arg(0), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			_ = cmd.Process.Signal(sig)
		case err := <-done:
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return exit.ExitCode(), nil
			}
			return 0, err
		}
	}
}
