package natsx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
)

// Subjects of the servers' account resolver, served in the system account.
const (
	claimsUpdateSubject = "$SYS.REQ.CLAIMS.UPDATE"
	claimsDeleteSubject = "$SYS.REQ.CLAIMS.DELETE"
)

// PushAccount hands an account's signed claims (Keys.AccountJWT) to the
// resolver of the servers at url ("": the servers c is connected to),
// which store them and apply them to the account at once: new JetStream
// limits bind its next write. In a cluster the servers pass them on to
// each other.
func (c *Conn) PushAccount(ctx context.Context, url, claims string) error {
	return c.systemRequest(ctx, url, claimsUpdateSubject, []byte(claims))
}

// DeleteAccount removes an account's claims from the resolver of the
// servers at url ("": c's) and disconnects its users. It does not remove
// the account's streams: delete them first.
func (c *Conn) DeleteAccount(ctx context.Context, url, account string) error {
	gc := jwt.NewGenericClaims(c.d.keys.OperatorPublicKey())
	gc.Data["accounts"] = []string{account}
	req, err := gc.Encode(c.d.keys.Operator)
	if err != nil {
		return fmt.Errorf("natsx: delete request: %w", err)
	}
	return c.systemRequest(ctx, url, claimsDeleteSubject, []byte(req))
}

// claimsResponse is what the resolver answers (server.ServerAPIClaimUpdateResponse).
type claimsResponse struct {
	Data *struct {
		Account string `json:"account"`
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"data"`
	Error *struct {
		Account     string `json:"account"`
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

// systemRequest sends one request to the resolver as a system account user.
func (c *Conn) systemRequest(ctx context.Context, url, subject string, body []byte) error {
	d := c.d
	d.account, d.perms = d.keys.System, nil
	if url != "" {
		d.url, d.srv = url, nil
	}
	nc, err := d.core("vrsky-accounts")
	if err != nil {
		return err
	}
	defer nc.Close()
	msg, err := nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("natsx: %s: no account resolver answers (is the server in operator mode with a full resolver?): %w", subject, err)
		}
		return fmt.Errorf("natsx: %s: %w", subject, err)
	}
	var r claimsResponse
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return fmt.Errorf("natsx: %s: answer %q: %w", subject, msg.Data, err)
	}
	if r.Error != nil {
		return fmt.Errorf("natsx: %s: account %s: %s (code %d)", subject, r.Error.Account, r.Error.Description, r.Error.Code)
	}
	return nil
}
