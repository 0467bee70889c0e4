// Package projections folds the event log into read models: the server-config
// projection the connection repositories read, the connections projection, and "as of"
// views at any past position or time.
package projections
