package store

// StateLimits bounds the pending challenge States of a backend that keeps
// them for several nodes (auth.StateStore). auth owns the numbers: it
// passes the ones its in-memory table keeps to every PutState, so one
// node and a cluster bound States alike. A new State pushes out, in this
// order: the user's own oldest once the user holds PerUser, the client's
// own oldest once the RADIUS client holds PerClient, and once Total are
// held, the oldest of the client that holds the most. Nobody pushes out
// another user's or client's State but by the last rule, and the flooder
// is then the one that loses.
type StateLimits struct {
	PerUser   int
	PerClient int
	Total     int
}
