package host

import "time"

// LiveMappings counts guest memories mapped outside the Go heap and not
// yet unmapped.
func LiveMappings() int64 { return liveMappings.Load() }

// Reclaim runs p's idle reclaim as its reclaimer would at now, and returns
// how many instances it closed.
func Reclaim(p *Pool, now time.Time) int { return p.reclaim(now) }
