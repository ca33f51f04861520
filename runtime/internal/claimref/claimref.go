// Package claimref lets the engine attach the object store that holds a
// claim-checked payload to a connector.Message, whose field for it is
// unexported: connectors read the payload through Message.Body and never
// see the store.
package claimref

import "github.com/vrsky/vrsky/platform/blob"

// Attach sets msg's object store; msg is a *connector.Message. Package
// connector sets Attach when it is initialised.
var Attach func(msg any, store blob.Store)
