// Package slack holds VRSky's built-in slack sink: it posts each message
// to a Slack incoming webhook, as a text rendered from the message's
// fields (by default the payload in a code block) or as Block Kit blocks
// taken from a field of the message.
//
// Slack's answers map to the pipeline's retry policy: 200 "ok" is a
// delivery; 429 is retried, and every sink posting to the same webhook
// waits out its Retry-After before posting again; 5xx is retried; 400
// invalid_payload or no_text, 403 action_prohibited, 404
// channel_not_found or no_service, 410 channel_is_archived (any other 4xx
// too) are permanent, and the message goes to the dead-letter queue with
// Slack's error text.
package slack
