package schedule

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/robfig/cron/v3"

	"github.com/vrsky/vrsky/runtime/connector"
)

//go:embed schedule.schema.json
var configSchema []byte

// Source is the schedule source connector.
var Source = connector.Connector{
	Name:         "schedule",
	Version:      "1.0.0",
	Kind:         connector.KindSource,
	Description:  "Emits a message on each tick of a cron expression (seconds optional, any time zone), once per tick across restarts and nodes.",
	ConfigSchema: configSchema,
	Builtin:      true,
	Singleton:    true,
	NewSource: func(cfg json.RawMessage, env connector.Env) (connector.Source, error) {
		return New(cfg, env)
	},
	Check: func(_ context.Context, cfg json.RawMessage, _ connector.Env) error {
		_, err := parse(cfg)
		return err
	},
}

// Config configures the schedule source.
type Config struct {
	Cron       string          `json:"cron"`
	Timezone   string          `json:"timezone,omitempty"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	MaxCatchUp *int            `json:"max_catch_up,omitempty"`
}

// parser accepts five fields, six with seconds first, and descriptors.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

type schedule struct {
	cfg     Config
	sched   cron.Schedule
	loc     *time.Location
	catchUp int
}

func parse(raw json.RawMessage) (*schedule, error) {
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("schedule config: %w", err)
	}
	s := &schedule{cfg: c, loc: time.UTC, catchUp: 10}
	if c.Timezone != "" {
		loc, err := time.LoadLocation(c.Timezone)
		if err != nil {
			return nil, &connector.SpecError{Field: "timezone", Reason: fmt.Sprintf("unknown time zone %q", c.Timezone)}
		}
		s.loc = loc
	}
	sched, err := parser.Parse(c.Cron)
	if err != nil {
		return nil, &connector.SpecError{Field: "cron", Reason: err.Error()}
	}
	s.sched = sched
	if c.MaxCatchUp != nil {
		s.catchUp = *c.MaxCatchUp
	}
	return s, nil
}

// New builds a schedule source from its config.
func New(cfg json.RawMessage, env connector.Env) (connector.Source, error) {
	s, err := parse(cfg)
	if err != nil {
		return nil, err
	}
	return &source{schedule: s, env: env}, nil
}

type source struct {
	*schedule
	env connector.Env
}

const lastKey = "last-tick"

// Run emits each tick until ctx ends.
func (s *source) Run(ctx context.Context, emit connector.Emitter) error {
	now := time.Now().In(s.loc)
	next := s.sched.Next(now)
	if last, ok := s.lastTick(ctx); ok {
		missed := s.missed(last, now)
		if len(missed) > 0 {
			if err := s.emit(ctx, emit, missed...); err != nil {
				return err
			}
		}
	}
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if err := s.emit(ctx, emit, next); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		next = s.sched.Next(next)
		if now := time.Now(); next.Before(now) { // the node stalled past ticks
			missed := s.missed(next.Add(-time.Nanosecond), now)
			if err := s.emit(ctx, emit, missed...); err != nil {
				return err
			}
			next = s.sched.Next(now.In(s.loc))
		}
		timer.Reset(time.Until(next))
	}
}

// missed returns the ticks after last and up to now, the most recent
// s.catchUp of them, oldest first.
func (s *source) missed(last, now time.Time) []time.Time {
	var ticks []time.Time
	skipped := 0
	for t := s.sched.Next(last.In(s.loc)); !t.After(now); t = s.sched.Next(t) {
		ticks = append(ticks, t)
		if len(ticks) > s.catchUp {
			ticks = ticks[1:]
			skipped++
		}
		if skipped > 1_000_000 { // a @every 1s schedule down for 11 days
			break
		}
	}
	if skipped > 0 {
		s.env.Logger.Warn("schedule: skipped missed ticks beyond max_catch_up", "skipped", skipped, "max_catch_up", s.catchUp)
	}
	return ticks
}

func (s *source) lastTick(ctx context.Context) (time.Time, bool) {
	if s.env.State == nil {
		return time.Time{}, false
	}
	b, err := s.env.State.Get(ctx, lastKey)
	if err != nil {
		if !errors.Is(err, connector.ErrNoState) {
			s.env.Logger.Warn("schedule: read last tick", "err", err)
		}
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// emit makes ticks durable, then records the last one.
func (s *source) emit(ctx context.Context, emit connector.Emitter, ticks ...time.Time) error {
	if len(ticks) == 0 {
		return nil
	}
	msgs := make([]*connector.Message, len(ticks))
	for i, t := range ticks {
		data, err := s.payload(t)
		if err != nil {
			return err
		}
		msgs[i] = &connector.Message{
			ID:     TickID(s.env.Tenant, s.env.Integration, t),
			Header: connector.Header{connector.HeaderContentType: {"application/json"}, "Vrsky-Tick": {t.Format(time.RFC3339Nano)}},
			Data:   data,
		}
	}
	if err := emit.EmitBatch(ctx, msgs); err != nil {
		return fmt.Errorf("schedule: emit tick %s: %w", ticks[0].Format(time.RFC3339), err)
	}
	if s.env.State != nil {
		last := ticks[len(ticks)-1]
		if err := s.env.State.Put(ctx, lastKey, []byte(strconv.FormatInt(last.UnixNano(), 10))); err != nil {
			// The ticks are durable; a restart may re-emit them and dedup drops them.
			s.env.Logger.Warn("schedule: record last tick", "err", err)
		}
	}
	return nil
}

func (s *source) payload(t time.Time) ([]byte, error) {
	tick := t.Format(time.RFC3339Nano)
	if len(s.cfg.Payload) == 0 {
		return json.Marshal(map[string]string{"tick": tick, "schedule": s.cfg.Cron})
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(s.cfg.Payload, &obj) != nil || obj == nil {
		return s.cfg.Payload, nil // not an object: emitted as given
	}
	if _, ok := obj["tick"]; !ok {
		obj["tick"], _ = json.Marshal(tick)
	}
	return json.Marshal(obj)
}

var namespace = uuid.MustParse("6f1d3a52-8c1e-4f57-9a43-3c1b2f0e7d10")

// TickID is the message id of the tick at t: the same on every node and
// after every restart, so JetStream stores each tick once.
func TickID(tenant, integration string, t time.Time) string {
	return uuid.NewSHA1(namespace, []byte(tenant+"/"+integration+"/"+strconv.FormatInt(t.UnixNano(), 10))).String()
}
