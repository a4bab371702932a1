"""The certificate job and its parts: the scan of Caddy's storage (`storage`, with `pem` and
`renewal_info` for the files it reads), what a scan plans (`scope`), and writing the plan
(`apply`); `job` runs them in turn."""
