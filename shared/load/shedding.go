package load

// Shedding is the front door's load-shedding policy (SHED_THRESHOLD,
// SHED_ADMIT_RATIO, LOAD_SIMULATION_ENABLED).
type Shedding struct {
	Threshold  float64 // load above which requests are shed
	AdmitRatio float64 // share admitted while shedding
	// SimulationEnabled lets operator overrides shed real traffic; when
	// false they are reported but never shed.
	SimulationEnabled bool
}

// Overloaded reports whether s is above the threshold by the load that
// decides shedding.
func (p Shedding) Overloaded(s Snapshot) bool {
	return s.SheddingLoad(p.SimulationEnabled) > p.Threshold
}

// Shed reports whether one request is refused at s: overloaded, and not among
// the AdmitRatio let through. draw is uniform in [0, 1) (an injectable random
// source), called only when overloaded.
func (p Shedding) Shed(s Snapshot, draw func() float64) bool {
	return p.Overloaded(s) && !(draw() < p.AdmitRatio)
}
