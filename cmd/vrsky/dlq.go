package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vrsky/vrsky/runtime"
)

// deadLetterView is a dead letter as the API shows it.
type deadLetterView struct {
	ID         string            `json:"id"`
	MessageID  string            `json:"message_id"`
	Stage      string            `json:"stage"`
	Error      string            `json:"error"`
	Attempts   int               `json:"attempts"`
	AttemptLog []attemptView     `json:"attempt_log"`
	At         time.Time         `json:"at"`
	Size       int               `json:"size"`
	Headers    map[string]string `json:"headers"`
	PayloadRef string            `json:"payload_ref"`
	Base64     *string           `json:"payload_base64"`
	Text       *string           `json:"payload_text"`
}

// attemptView is one failed attempt of a dead letter.
type attemptView struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

func dlqPath(integration string) string { return integrationPath(integration) + "/dlq" }

// newDLQCmd is `vrsky dlq`: an integration's dead letters.
func newDLQCmd() *cobra.Command {
	cmd := group(&cobra.Command{Use: "dlq", Aliases: []string{"dead-letters"}, Short: "List, inspect, replay and delete an integration's dead letters"})
	opts := addClientFlags(cmd)

	var stage, before string
	var limit int
	list := &cobra.Command{Use: "list INTEGRATION", Short: "List an integration's dead letters, newest first (without payloads)", Args: cobra.ExactArgs(1),
		ValidArgsFunction: opts.completeIntegrations}
	list.Flags().StringVar(&stage, "stage", "", "only this stage: sink:<name>, step:<name>, route:<sink> or route")
	list.Flags().StringVar(&before, "before", "", "the page after this id (the previous page's next)")
	list.Flags().IntVar(&limit, "limit", 0, "page size (default 50, at most 1000)")
	listOut := addOutputFlag(list)
	list.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		q := url.Values{}
		if stage != "" {
			q.Set("stage", stage)
		}
		if before != "" {
			q.Set("before", before)
		}
		if limit > 0 {
			q.Set("limit", strconv.Itoa(limit))
		}
		path := dlqPath(args[0])
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		raw, err := c.getRaw(path)
		if err != nil {
			return err
		}
		return listOut.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
			var page struct {
				Items []deadLetterView `json:"items"`
				Next  string           `json:"next"`
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return fmt.Errorf("dead letters: %w", err)
			}
			if len(page.Items) == 0 {
				fmt.Fprintf(w, "No dead letters in integration %s.\n", args[0])
				return nil
			}
			t := newTable(w)
			t.row("ID", "STAGE", "ATTEMPTS", "AGE", "SIZE", "MESSAGE-ID", "ERROR")
			for _, d := range page.Items {
				t.row(d.ID, d.Stage, d.Attempts, age(d.At), d.Size, d.MessageID, oneLine(d.Error, 80))
			}
			if err := t.flush(); err != nil {
				return err
			}
			if page.Next != "" {
				fmt.Fprintf(w, "more: vrsky dlq list %s --before %s\n", args[0], page.Next)
			}
			return nil
		})
	}

	show := &cobra.Command{Use: "show INTEGRATION ID", Short: "Show a dead letter: stage, attempts, errors, headers and payload", Args: cobra.ExactArgs(2),
		ValidArgsFunction: opts.completeDeadLetters}
	showOut := addOutputFlag(show)
	show.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		raw, err := c.getRaw(dlqPath(args[0]) + "/" + url.PathEscape(args[1]))
		if err != nil {
			return err
		}
		return showOut.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
			var d deadLetterView
			if err := json.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("dead letter: %w", err)
			}
			return printDeadLetter(w, d)
		})
	}

	var all bool
	var replayStage string
	replay := &cobra.Command{
		Use:   "replay INTEGRATION [ID...]",
		Short: "Send dead letters back into the stage that failed (the ones named, or --all of them, of one --stage)",
		Long: "replay sends each entry back into the stage that failed with a fresh attempt count and removes it from the DLQ," +
			" so an entry is replayed once: a second replay of the same id answers not found.",
		Args: cobra.MinimumNArgs(1), ValidArgsFunction: opts.completeDeadLetters,
	}
	replay.Flags().BoolVar(&all, "all", false, "replay every dead letter of the integration (of --stage, when given)")
	replay.Flags().StringVar(&replayStage, "stage", "", "with --all: only this stage")
	replayOut := addOutputFlag(replay)
	replay.RunE = func(cmd *cobra.Command, args []string) error {
		ids := args[1:]
		switch {
		case all && len(ids) > 0:
			return errors.New("name dead letters or pass --all, not both")
		case !all && len(ids) == 0:
			return errors.New("name the dead letters to replay (vrsky dlq list " + args[0] + "), or pass --all")
		case !all && replayStage != "":
			return errors.New("--stage goes with --all")
		}
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		n := 0
		if all {
			path := dlqPath(args[0]) + "/replay"
			if replayStage != "" {
				path += "?stage=" + url.QueryEscape(replayStage)
			}
			var r struct {
				Replayed int `json:"replayed"`
			}
			if err := c.do(http.MethodPost, path, "", nil, &r); err != nil {
				return err
			}
			n = r.Replayed
		}
		for _, id := range ids {
			if err := c.do(http.MethodPost, dlqPath(args[0])+"/"+url.PathEscape(id)+"/replay", "", nil, nil); err != nil {
				if n > 0 {
					return fmt.Errorf("replayed %d, then dead letter %s: %w", n, id, err)
				}
				return err
			}
			n++
		}
		return replayOut.printValue(cmd.OutOrStdout(), map[string]int{"replayed": n}, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "replayed %s of integration %s\n", plural(n, "dead letter"), args[0])
			return err
		})
	}

	del := &cobra.Command{Use: "delete INTEGRATION ID...", Short: "Delete dead letters without replaying them: the messages leave for good", Args: cobra.MinimumNArgs(2),
		ValidArgsFunction: opts.completeDeadLetters,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := opts.client(cmd, requestTimeout)
			if err != nil {
				return err
			}
			for _, id := range args[1:] {
				if err := c.do(http.MethodDelete, dlqPath(args[0])+"/"+url.PathEscape(id), "", nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "dead letter %s of integration %s deleted\n", id, args[0])
			}
			return nil
		},
	}
	cmd.AddCommand(list, show, replay, del)
	return cmd
}

// printDeadLetter is `dlq show`'s human form.
func printDeadLetter(w io.Writer, d deadLetterView) error {
	t := newTable(w)
	t.row("ID:", d.ID)
	t.row("Message:", d.MessageID)
	t.row("Stage:", d.Stage)
	t.row("Attempts:", d.Attempts)
	t.row("Dead-lettered:", d.At.Format(time.RFC3339)+" ("+age(d.At)+" ago)")
	t.row("Size:", plural(d.Size, "byte"))
	t.row("Error:", oneLine(d.Error, 500))
	if err := t.flush(); err != nil {
		return err
	}
	if len(d.Headers) > 0 {
		fmt.Fprintln(w, "\nHeaders:")
		keys := make([]string, 0, len(d.Headers))
		for k := range d.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		t = newTable(w)
		for _, k := range keys {
			t.row("  "+k+":", oneLine(d.Headers[k], 200))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(d.AttemptLog) > 0 {
		fmt.Fprintln(w, "\nAttempts:")
		t = newTable(w)
		t.row("  ATTEMPT", "AT", "ERROR")
		for _, a := range d.AttemptLog {
			t.row("  "+strconv.Itoa(a.Attempt), a.At.Format(time.RFC3339), oneLine(a.Error, 200))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\nPayload:")
	switch {
	case d.PayloadRef != "":
		fmt.Fprintf(w, "  in the object store, %s (too large to show)\n", d.PayloadRef)
	case d.Text != nil:
		fmt.Fprintln(w, strings.TrimRight(*d.Text, "\n"))
	case d.Base64 != nil:
		fmt.Fprintf(w, "  not text; base64: %s\n", *d.Base64)
	}
	return nil
}

// newMessageCmd is `vrsky message`: where a message is.
func newMessageCmd() *cobra.Command {
	cmd := group(&cobra.Command{Use: "message", Aliases: []string{"messages", "msg"}, Short: "Find where a message is: stages, attempts, errors"})
	opts := addClientFlags(cmd)
	var integration string
	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show a message's trace (its id is the webhook's answer, or your Idempotency-Key)",
		Long:  "get shows where a message of the last 7 days is. Without --integration it asks each integration of the tenant.",
		Args:  cobra.ExactArgs(1),
	}
	get.Flags().StringVarP(&integration, "integration", "i", "", "the integration the message went to (default: look in each)")
	_ = get.RegisterFlagCompletionFunc("integration", opts.completeIntegrationFlag)
	out := addOutputFlag(get)
	get.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := opts.client(cmd, requestTimeout)
		if err != nil {
			return err
		}
		id := args[0]
		names := []string{integration}
		if integration == "" {
			var page struct {
				Integrations []struct {
					Name string `json:"name"`
				} `json:"integrations"`
			}
			if err := c.do(http.MethodGet, "/api/v1/integrations", "", nil, &page); err != nil {
				return err
			}
			names = names[:0]
			for _, in := range page.Integrations {
				names = append(names, in.Name)
			}
		}
		var found []string
		var raw json.RawMessage
		for _, name := range names {
			r, err := c.getRaw(integrationPath(name) + "/messages/" + url.PathEscape(id))
			switch {
			case httpStatus(err) == http.StatusNotFound && integration == "":
				continue
			case err != nil:
				return err
			}
			found, raw = append(found, name), r
		}
		switch len(found) {
		case 0:
			return fmt.Errorf("no record of message %q in any integration of the last 7 days", id)
		case 1:
		default:
			return fmt.Errorf("message %q is in integrations %s: name one with --integration", id, strings.Join(found, ", "))
		}
		return out.print(cmd.OutOrStdout(), raw, func(w io.Writer) error {
			var tr runtime.MessageTrace
			if err := json.Unmarshal(raw, &tr); err != nil {
				return fmt.Errorf("message: %w", err)
			}
			fmt.Fprintf(w, "message %s in integration %s: %s\n\n", tr.ID, tr.Integration, tr.State)
			t := newTable(w)
			t.row("STAGE", "STATUS", "ATTEMPT", "AT", "ERROR")
			for _, s := range tr.Stages {
				attempt := "-"
				if s.Attempt > 0 {
					attempt = strconv.Itoa(s.Attempt)
				}
				t.row(s.Stage, s.Status, attempt, s.At.Format(time.RFC3339Nano), orDash(oneLine(s.Error, 120)))
			}
			return t.flush()
		})
	}
	cmd.AddCommand(get)
	return cmd
}
