package runtime

import "time"

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

// SubjectDLQ is where an integration's dead letters are kept. The tenant's
// DLQ stream holds vrsky.<tenant>.dlq.>; integration names may not be "dlq".
func SubjectDLQ(tenant, integration string) string {
	return "vrsky." + tenant + ".dlq." + integration
}

func streamName(tenant, integration string) string { return "VRSKY_" + tenant + "_" + integration }

func dlqStreamName(tenant string) string { return "VRSKY_DLQ_" + tenant }

func sinkConsumerName(sink string) string { return "sink-" + sink }

const inConsumerName = "in"
