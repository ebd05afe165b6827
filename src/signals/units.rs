//! The schedules rendered for the host's own scheduler (issue 17, `wst schedule print`):
//! systemd `.service` + `.timer` units and Windows Task Scheduler XML, for operators who
//! prefer those to `wst daemon`. Both run the same `wst --config FILE JOB` commands.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Job, Schedule, SignalError};

/// Most calendar triggers one Windows task gets (an expression firing more often is refused:
/// run `wst daemon` instead).
const MAX_WINDOWS_TRIGGERS: usize = 48;

// croner's bit flags (`croner::component`, a private module): a value set plainly, and the
// `L`/`W`/`#` specifiers that neither systemd nor Task Scheduler can express.
const ALL_BIT: u8 = 1;
const LAST_BIT: u8 = 1 << 6;
const SPECIAL_BITS: [u8; 7] = [1 << 1, 1 << 2, 1 << 3, 1 << 4, 1 << 5, LAST_BIT, 1 << 7];

/// The fields of a schedule as plain value lists (`None`: every value, `*`).
struct Fields {
    seconds: Vec<u16>,
    minutes: Vec<u16>,
    hours: Vec<u16>,
    days: Option<Vec<u16>>,
    months: Option<Vec<u16>>,
    weekdays: Option<Vec<u16>>,
}

fn fields(s: &Schedule) -> Result<Fields, SignalError> {
    let p = &s.cron().pattern;
    let err = |detail: &str| SignalError::Schedule {
        expression: s.expression().to_owned(),
        detail: detail.to_owned(),
    };
    for c in [&p.days, &p.days_of_week] {
        if c.is_feature_enabled(LAST_BIT)
            || SPECIAL_BITS
                .iter()
                .any(|b| !c.get_set_values(*b).is_empty())
        {
            return Err(err(
                "uses L, W or # (last, nearest weekday, nth weekday), which systemd and Task \
                 Scheduler cannot express: run it with `wst daemon`",
            ));
        }
    }
    if !p.years.is_all_set() {
        return Err(err(
            "a year field cannot be rendered: run it with `wst daemon`",
        ));
    }
    // croner's component type lives in a private module: a macro instead of a function.
    macro_rules! restricted {
        ($c:expr) => {{
            let c = &$c;
            (!c.is_all_set()).then(|| c.get_set_values(ALL_BIT))
        }};
    }
    let days = restricted!(p.days);
    let mut weekdays = restricted!(p.days_of_week).map(|mut v| {
        // 7 is Sunday as 0 is.
        if v.contains(&7) {
            v.retain(|d| *d != 7);
            if !v.contains(&0) {
                v.insert(0, 0);
            }
        }
        v
    });
    if weekdays.as_ref().is_some_and(|v| v.len() == 7) {
        weekdays = None;
    }
    if days.as_ref().is_some_and(Vec::is_empty) || weekdays.as_ref().is_some_and(Vec::is_empty) {
        return Err(err(
            "uses a day specifier that systemd and Task Scheduler cannot express: run it with \
             `wst daemon`",
        ));
    }
    if days.is_some() && weekdays.is_some() {
        return Err(err(
            "restricts both the day of month and the day of week (cron fires on either, \
             systemd and Task Scheduler on both): split it into two schedules",
        ));
    }
    Ok(Fields {
        seconds: p.seconds.get_set_values(ALL_BIT),
        minutes: p.minutes.get_set_values(ALL_BIT),
        hours: p.hours.get_set_values(ALL_BIT),
        days,
        months: restricted!(p.months),
        weekdays,
    })
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const WEEKDAYS_LONG: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn list(values: &[u16], all: usize) -> String {
    if values.len() == all {
        return "*".into();
    }
    values
        .iter()
        .map(|v| format!("{v:02}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// systemd's `OnCalendar=` value of `s`, e.g. `*-*-* 00,04,08,12,16,20:00:00 UTC`.
fn on_calendar(s: &Schedule) -> Result<String, SignalError> {
    let f = fields(s)?;
    let mut out = String::new();
    if let Some(w) = &f.weekdays {
        let names: Vec<&str> = w.iter().map(|d| WEEKDAYS[usize::from(*d % 7)]).collect();
        let _ = write!(out, "{} ", names.join(","));
    }
    let _ = write!(
        out,
        "*-{}-{} {}:{}:{} {}",
        f.months
            .as_deref()
            .map_or_else(|| "*".into(), |m| list(m, 12)),
        f.days
            .as_deref()
            .map_or_else(|| "*".into(), |d| list(d, 31)),
        list(&f.hours, 24),
        list(&f.minutes, 60),
        list(&f.seconds, 60),
        s.time_zone_name()
    );
    Ok(out)
}

/// A command-line word for systemd's `ExecStart=`: quoted when it holds a space or a quote,
/// `%` doubled (systemd's specifier character).
fn systemd_word(w: &str) -> String {
    let w = w.replace('%', "%%");
    if w.is_empty() || w.contains([' ', '\t', '"', '\'', '\\', ';']) {
        format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        w
    }
}

fn by_job(schedules: &[Schedule]) -> BTreeMap<Job, Vec<&Schedule>> {
    let mut jobs: BTreeMap<Job, Vec<&Schedule>> = BTreeMap::new();
    for s in schedules {
        jobs.entry(s.job()).or_default().push(s);
    }
    jobs
}

/// The systemd units for `schedules`: per job, `wst-<job>.service` (a oneshot running
/// `<program> --config <config> <job>`) and `wst-<job>.timer` (one `OnCalendar=` per schedule
/// in its time zone, `Persistent=true`: one catch-up run after downtime, as `wst daemon`
/// does; systemd never starts a oneshot service that is still running, so never two runs of
/// one job). Returned as `(file name, content)` pairs in job order.
///
/// # Errors
/// [`SignalError::Schedule`] for an expression systemd cannot express (`L`, `W`, `#`, a year
/// field, day of month and day of week both restricted).
pub fn systemd_units(
    schedules: &[Schedule],
    program: &str,
    config: &str,
) -> Result<Vec<(String, String)>, SignalError> {
    let mut out = Vec::new();
    for (job, list) in by_job(schedules) {
        let mut service = String::new();
        let _ = writeln!(
            service,
            "# Generated by `wst schedule print --systemd` (issue 17)."
        );
        let _ = writeln!(service, "[Unit]");
        let _ = writeln!(service, "Description=wst {job}");
        let _ = writeln!(service, "Wants=network-online.target");
        let _ = writeln!(service, "After=network-online.target");
        let _ = writeln!(service);
        let _ = writeln!(service, "[Service]");
        let _ = writeln!(service, "Type=oneshot");
        let _ = writeln!(
            service,
            "ExecStart={} --config {} {}",
            systemd_word(program),
            systemd_word(config),
            job.command_line()
        );
        let _ = writeln!(
            service,
            "# Any exit status but 0 fails the unit (1 failed, 2 configuration, 3 degraded, 4 locked)."
        );
        let mut timer = String::new();
        let _ = writeln!(
            timer,
            "# Generated by `wst schedule print --systemd` (issue 17)."
        );
        let _ = writeln!(timer, "[Unit]");
        let _ = writeln!(timer, "Description=wst {job} schedule");
        let _ = writeln!(timer);
        let _ = writeln!(timer, "[Timer]");
        for s in list {
            let _ = writeln!(
                timer,
                "# cron `{}` in {}",
                s.expression(),
                s.time_zone_name()
            );
            let _ = writeln!(timer, "OnCalendar={}", on_calendar(s)?);
        }
        let _ = writeln!(timer, "Persistent=true");
        let _ = writeln!(timer);
        let _ = writeln!(timer, "[Install]");
        let _ = writeln!(timer, "WantedBy=timers.target");
        out.push((format!("wst-{job}.service"), service));
        out.push((format!("wst-{job}.timer"), timer));
    }
    Ok(out)
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A Windows command-line argument, quoted when it holds a space or a quote.
fn windows_word(w: &str) -> String {
    if w.is_empty() || w.contains([' ', '\t', '"']) {
        format!("\"{}\"", w.replace('"', "\\\""))
    } else {
        w.to_owned()
    }
}

fn windows_triggers(s: &Schedule, out: &mut String, count: &mut usize) -> Result<(), SignalError> {
    let f = fields(s)?;
    let err = |detail: String| SignalError::Schedule {
        expression: s.expression().to_owned(),
        detail,
    };
    if f.weekdays.is_some() && f.months.is_some() {
        return Err(err(
            "restricts both the month and the day of week, which this renderer does not \
             express: run it with `wst daemon`"
                .into(),
        ));
    }
    let mut schedule = String::new();
    match (&f.weekdays, &f.days, &f.months) {
        (Some(w), _, _) => {
            schedule.push_str("      <ScheduleByWeek>\n        <WeeksInterval>1</WeeksInterval>\n        <DaysOfWeek>\n");
            for d in w {
                let _ = writeln!(
                    schedule,
                    "          <{} />",
                    WEEKDAYS_LONG[usize::from(*d % 7)]
                );
            }
            schedule.push_str("        </DaysOfWeek>\n      </ScheduleByWeek>\n");
        }
        (None, None, None) => {
            schedule.push_str(
                "      <ScheduleByDay>\n        <DaysInterval>1</DaysInterval>\n      </ScheduleByDay>\n",
            );
        }
        (None, days, months) => {
            schedule.push_str("      <ScheduleByMonth>\n        <DaysOfMonth>\n");
            let all_days: Vec<u16> = (1..=31).collect();
            for d in days.as_ref().unwrap_or(&all_days) {
                let _ = writeln!(schedule, "          <Day>{d}</Day>");
            }
            schedule.push_str("        </DaysOfMonth>\n        <Months>\n");
            let all_months: Vec<u16> = (1..=12).collect();
            for m in months.as_ref().unwrap_or(&all_months) {
                let _ = writeln!(schedule, "          <{} />", MONTHS[usize::from(*m - 1)]);
            }
            schedule.push_str("        </Months>\n      </ScheduleByMonth>\n");
        }
    }
    for h in &f.hours {
        for m in &f.minutes {
            for sec in &f.seconds {
                *count += 1;
                if *count > MAX_WINDOWS_TRIGGERS {
                    return Err(err(format!(
                        "fires at more than {MAX_WINDOWS_TRIGGERS} times of day, too many \
                         triggers for one task: run it with `wst daemon`"
                    )));
                }
                let _ = writeln!(out, "    <CalendarTrigger>");
                let _ = writeln!(
                    out,
                    "      <StartBoundary>2000-01-01T{h:02}:{m:02}:{sec:02}</StartBoundary>"
                );
                let _ = writeln!(out, "      <Enabled>true</Enabled>");
                out.push_str(&schedule);
                let _ = writeln!(out, "    </CalendarTrigger>");
            }
        }
    }
    Ok(())
}

/// Windows Task Scheduler XML (task schema 1.2) for `schedules`: per job one task
/// `wst-<job>.xml` with one calendar trigger per time of day the expression fires at (at most
/// 48), running `<program> --config <config> <job>`; `MultipleInstancesPolicy` `IgnoreNew`
/// (never two runs of one job) and `StartWhenAvailable` (one catch-up after downtime). Task
/// Scheduler reads trigger times in the host's time zone: the configured zone is written in
/// the task's description, and the host must be set to it. Import with `schtasks /create /tn
/// wst-backup /xml wst-backup.xml`.
///
/// # Errors
/// [`SignalError::Schedule`] for an expression it cannot express (`L`, `W`, `#`, a year
/// field, day of month and day of week both restricted, month and day of week both
/// restricted, more than 48 times of day).
pub fn windows_task_xml(
    schedules: &[Schedule],
    program: &str,
    config: &str,
) -> Result<Vec<(String, String)>, SignalError> {
    let mut out = Vec::new();
    for (job, list) in by_job(schedules) {
        let mut triggers = String::new();
        let mut count = 0;
        let mut described = Vec::new();
        for s in list {
            windows_triggers(s, &mut triggers, &mut count)?;
            described.push(format!(
                "cron `{}` in {}",
                s.expression(),
                s.time_zone_name()
            ));
        }
        let mut x = String::new();
        x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x.push_str("<!-- Generated by `wst schedule print --windows-task` (issue 17). -->\n");
        x.push_str("<Task version=\"1.2\" xmlns=\"http://schemas.microsoft.com/windows/2004/02/mit/task\">\n");
        x.push_str("  <RegistrationInfo>\n");
        let _ = writeln!(
            x,
            "    <Description>{}</Description>",
            xml(&format!(
                "wst {job}: {} (trigger times are the host's local time: set the host to that time zone)",
                described.join("; ")
            ))
        );
        let _ = writeln!(x, "    <URI>\\wst-{job}</URI>");
        x.push_str("  </RegistrationInfo>\n  <Triggers>\n");
        x.push_str(&triggers);
        x.push_str("  </Triggers>\n");
        x.push_str("  <Settings>\n");
        x.push_str("    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>\n");
        x.push_str("    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>\n");
        x.push_str("    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>\n");
        x.push_str("    <StartWhenAvailable>true</StartWhenAvailable>\n");
        x.push_str("    <Enabled>true</Enabled>\n");
        x.push_str("    <ExecutionTimeLimit>PT72H</ExecutionTimeLimit>\n");
        x.push_str("  </Settings>\n");
        x.push_str("  <Actions Context=\"Author\">\n    <Exec>\n");
        let _ = writeln!(
            x,
            "      <Command>{}</Command>",
            xml(&windows_word(program))
        );
        let _ = writeln!(
            x,
            "      <Arguments>{}</Arguments>",
            xml(&format!(
                "--config {} {}",
                windows_word(config),
                job.command_line()
            ))
        );
        x.push_str("    </Exec>\n  </Actions>\n</Task>\n");
        out.push((format!("wst-{job}.xml"), x));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_calendar_lists_every_field() {
        let s = Schedule::new(Job::Backup, "0 */4 * * *", "UTC").unwrap();
        assert_eq!(
            on_calendar(&s).unwrap(),
            "*-*-* 00,04,08,12,16,20:00:00 UTC"
        );
        let s = Schedule::new(Job::Prune, "0 3 * * SUN", "Europe/Berlin").unwrap();
        assert_eq!(on_calendar(&s).unwrap(), "Sun *-*-* 03:00:00 Europe/Berlin");
        let s = Schedule::new(Job::Drill, "30 4 1 * *", "UTC").unwrap();
        assert_eq!(on_calendar(&s).unwrap(), "*-*-01 04:30:00 UTC");
        let s = Schedule::new(Job::Drill, "0 4 1 * 1", "UTC").unwrap();
        assert!(
            on_calendar(&s)
                .unwrap_err()
                .to_string()
                .contains("split it")
        );
        let s = Schedule::new(Job::Drill, "0 4 L * *", "UTC").unwrap();
        assert!(
            on_calendar(&s)
                .unwrap_err()
                .to_string()
                .contains("wst daemon")
        );
    }
}
