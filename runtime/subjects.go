package runtime

import (
	"strings"
	"time"
)

// Subjects and stream names. Tenant, integration and sink names are
// restricted to [a-z0-9-], so they are safe as subject tokens and the
// underscore-joined stream names cannot collide.

// DLQRetention is how long dead letters are kept (DESIGN.md: 7 days).
const DLQRetention = 7 * 24 * time.Hour

func subjectBase(tenant, integration string) string {
	return "vrsky." + tenant + "." + integration
}

// SubjectIn is where a source's messages land.
func SubjectIn(tenant, integration string) string {
	return subjectBase(tenant, integration) + ".in"
}

// SubjectOut is where messages wait for one sink.
func SubjectOut(tenant, integration, sink string) string {
	return subjectBase(tenant, integration) + ".out." + sink
}

// SubjectDLQ is the prefix of an integration's dead letters: each is
// kept on SubjectDLQ + "." + the stage that failed (subjectDLQStage), so
// JetStream counts what the DLQ holds per stage (vrsky_dlq_depth). Entries
// written before the stage token was added sit on SubjectDLQ itself. The
// tenant's DLQ stream holds vrsky.<tenant>.dlq.>; integration names may
// not be "dlq".
func SubjectDLQ(tenant, integration string) string {
	return "vrsky." + tenant + ".dlq." + integration
}

// subjectDLQStage is where a dead letter of stage is kept:
// vrsky.<tenant>.dlq.<integration>.<stage>, e.g. ….dlq.orders.sink:api
// (names are [a-z0-9-], so the stage's wire form is one subject token).
func subjectDLQStage(tenant, integration string, stage Stage) string {
	return SubjectDLQ(tenant, integration) + "." + stage.String()
}

// isDLQSubject reports whether subject holds dead letters of integration:
// SubjectDLQ itself (entries without a stage token) or one of its stages.
func isDLQSubject(subject, tenant, integration string) bool {
	base := SubjectDLQ(tenant, integration)
	return subject == base || strings.HasPrefix(subject, base+".")
}

func streamName(tenant, integration string) string { return "VRSKY_" + tenant + "_" + integration }

func dlqStreamName(tenant string) string { return "VRSKY_DLQ_" + tenant }

func sinkConsumerName(sink string) string { return "sink-" + sink }

const inConsumerName = "in"
