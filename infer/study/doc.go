// Package study is the comparison of attention kinds (mqa compare): its results
// (results.json), the report (report.md) and the plots it writes.
package study
