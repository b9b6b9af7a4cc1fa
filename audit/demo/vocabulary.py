"""The demo company's words: departments, document subjects, and the kinds of facts documents state.

Pure data. ``corpus.py`` draws from it with a seeded ``random.Random``; nothing here is random itself.
A fact kind carries everything needed to state a fact in a document, ask about it and answer it, so
that examples, production questions and gold questions about one fact always agree on its value.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FactKind:
    """One kind of fact a department's documents state (e.g. a retention period).

    ``statement`` is the sentence in the document body and, with the citation appended, the grounded
    answer. ``questions`` are the curators' phrasings (training examples and production traffic);
    ``gold_question`` is the phrasing of staff that no curated example uses: production traffic asks
    in it too (``corpus.staff_question``), and the held-out gold items ask their facts in it.
    Templates use ``{title}``, ``{subject}`` and ``{value}``.
    """

    key: str
    label: str  # what the fact is called in a change note ("retention period")
    statement: str
    questions: tuple[str, str, str]
    gold_question: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class DepartmentVocabulary:
    name: str
    code: str  # document family prefix
    kinds: tuple[str, ...]  # document kinds that end a title ("Policy", "Runbook")
    subjects: tuple[str, ...]
    facts: tuple[FactKind, ...]
    filler: tuple[str, ...]  # fact-free sentences that make a body read like a real document


def _owner(roles: tuple[str, ...]) -> FactKind:
    return FactKind(
        key="owner",
        label="document owner",
        statement="The {value} owns the {title} and approves every change to it.",
        questions=(
            "Who owns the {title}?",
            "Who approves changes to the {title}?",
            "Which role is responsible for the {title}?",
        ),
        gold_question="Name the role accountable for maintaining the {title}.",
        values=roles,
    )


def _review_cycle(body: str, values: tuple[str, ...]) -> FactKind:
    return FactKind(
        key="review_cycle",
        label="review cycle",
        statement="The {title} is reviewed every {value} by " + body + ".",
        questions=(
            "How often is the {title} reviewed?",
            "What is the review cycle for the {title}?",
            "When does the {title} get its periodic review?",
        ),
        gold_question="At what interval is the {title} formally re-examined?",
        values=values,
    )


DEPARTMENTS: tuple[DepartmentVocabulary, ...] = (
    DepartmentVocabulary(
        name="Legal",
        code="LEG",
        kinds=("Policy", "Guideline", "Procedure"),
        subjects=(
            "Contract Review",
            "Non-Disclosure Agreement",
            "Litigation Hold",
            "Intellectual Property Assignment",
            "Open Source License Use",
            "Data Processing Agreement",
            "Power of Attorney",
            "Signing Authority",
            "Legal Entity Management",
            "Board Minutes",
            "Trademark Registration",
            "Outside Counsel Engagement",
            "Legal Privilege",
            "Legal Document Retention",
            "Dispute Escalation",
            "Regulatory Inquiry Response",
            "Subpoena Handling",
            "Contract Template Use",
            "Vendor Master Agreement",
            "Employment Contract Clause",
            "Competition Law",
            "Export Control",
            "Consumer Terms Update",
            "Privacy Notice Maintenance",
            "Corporate Governance",
            "Shareholder Resolution",
            "Patent Disclosure",
            "Software Licensing",
            "Cloud Services Contracting",
            "Liability Cap",
            "Indemnity Clause",
            "Governing Law Selection",
            "Electronic Signature",
            "Legal Hold Release",
            "Claims Management",
            "Settlement Approval",
        ),
        facts=(
            _owner(
                (
                    "General Counsel",
                    "Head of Legal Operations",
                    "Senior Legal Counsel",
                    "Company Secretary",
                    "Head of Litigation",
                    "Deputy General Counsel",
                )
            ),
            _review_cycle("the Legal leadership team", ("6 months", "12 months", "18 months", "24 months")),
            FactKind(
                key="retention",
                label="retention period",
                statement="Files opened under the {title} are kept for {value} after closure.",
                questions=(
                    "How long are files under the {title} kept?",
                    "What is the retention period for {subject} files?",
                    "For how long must closed {subject} files be stored?",
                ),
                gold_question="Which storage duration does the {title} set for closed files?",
                values=("6 years", "7 years", "10 years", "12 years", "15 years"),
            ),
            FactKind(
                key="system",
                label="system of record",
                statement="Documents under the {title} are stored in {value}.",
                questions=(
                    "Which system stores {subject} documents?",
                    "Where are documents under the {title} kept?",
                    "What tool do we use to store {subject} documents?",
                ),
                gold_question="Name the repository the {title} requires for its documents.",
                values=("Clausebase", "LexVault", "DocketOne", "SignFlow", "CaseLedger"),
            ),
            FactKind(
                key="review_threshold",
                label="legal review threshold",
                statement="Agreements under the {title} worth more than {value} must be reviewed by Legal "
                "before signature.",
                questions=(
                    "Above what value does an agreement under the {title} need Legal review?",
                    "What is the Legal review threshold in the {title}?",
                    "When do {subject} agreements require review by Legal?",
                ),
                gold_question="Which contract value triggers mandatory legal review under the {title}?",
                values=("EUR 25,000", "EUR 50,000", "EUR 100,000", "EUR 250,000", "EUR 500,000"),
            ),
            FactKind(
                key="turnaround",
                label="response time",
                statement="Legal responds to requests under the {title} within {value}.",
                questions=(
                    "How long does Legal take to answer {subject} requests?",
                    "What is the turnaround time for requests under the {title}?",
                    "Within how many days will Legal respond on {subject} matters?",
                ),
                gold_question="What response time does the {title} promise for requests sent to Legal?",
                values=("2 business days", "3 business days", "5 business days", "10 business days"),
            ),
        ),
        filler=(
            "Where a matter is urgent, the requester states the reason and the commercial impact.",
            "Legal advice given under this document is privileged and must not be forwarded outside the company.",
            "Local counsel is consulted where a matter falls under a jurisdiction other than the home country.",
            "Deviations from the standard positions are recorded together with the business justification.",
            "Templates referenced here are the only approved starting point for new drafts.",
        ),
    ),
    DepartmentVocabulary(
        name="Compliance",
        code="CMP",
        kinds=("Policy", "Procedure", "Standard"),
        subjects=(
            "MiFID II Best Execution",
            "Anti-Money Laundering",
            "Know Your Customer Onboarding",
            "Sanctions Screening",
            "Market Abuse Surveillance",
            "Insider List Management",
            "Personal Account Dealing",
            "Conflicts of Interest",
            "Gifts and Hospitality",
            "Whistleblowing",
            "Anti-Bribery and Corruption",
            "Complaints Handling",
            "Suspicious Activity Reporting",
            "Transaction Reporting",
            "Regulatory Record Keeping",
            "Outsourcing Oversight",
            "Third-Party Due Diligence",
            "Politically Exposed Persons",
            "Client Categorisation",
            "Product Governance",
            "Inducements",
            "Suitability Assessment",
            "Trade Surveillance Alert Review",
            "Regulatory Change Management",
            "Compliance Monitoring Programme",
            "Data Protection Impact Assessment",
            "Cross-Border Data Transfer",
            "Personal Data Breach Notification",
            "Fraud Prevention",
            "Tax Evasion Facilitation",
            "FATCA and CRS Reporting",
            "DORA ICT Risk",
            "Operational Resilience",
            "Vulnerable Customer Treatment",
            "Financial Promotions Approval",
            "Client Money Reconciliation",
            "Information Barriers",
            "Remuneration Code",
            "Senior Managers Certification",
            "Market Sounding",
        ),
        facts=(
            _owner(
                (
                    "Head of Compliance",
                    "Chief Compliance Officer",
                    "Money Laundering Reporting Officer",
                    "Compliance Monitoring Lead",
                    "Data Protection Officer",
                    "Head of Financial Crime",
                )
            ),
            _review_cycle("the Compliance Committee", ("6 months", "12 months", "18 months", "24 months")),
            FactKind(
                key="retention",
                label="retention period",
                statement="Evidence gathered under the {title} is retained for {value}.",
                questions=(
                    "How long do we keep evidence under the {title}?",
                    "What is the retention period for {subject} evidence?",
                    "For how long must {subject} records be stored?",
                ),
                gold_question="Which storage duration does the {title} set for its evidence?",
                values=("5 years", "6 years", "7 years", "10 years"),
            ),
            FactKind(
                key="system",
                label="case system",
                statement="All {subject} cases are logged in {value}.",
                questions=(
                    "Which system do we use to log {subject} cases?",
                    "Where are {subject} cases recorded?",
                    "What tool is used for logging cases under the {title}?",
                ),
                gold_question="Name the application in which the {title} requires cases to be logged.",
                values=("ComplyTrack", "Sentinel", "RegBook", "WatchTower", "ClearScreen"),
            ),
            FactKind(
                key="breach_report",
                label="breach reporting deadline",
                statement="Suspected breaches of the {title} must be reported to Compliance within {value}.",
                questions=(
                    "How quickly must a suspected breach of the {title} be reported?",
                    "What is the deadline for reporting {subject} breaches?",
                    "Within what time do I report a possible breach of the {title}?",
                ),
                gold_question="What reporting window applies once someone suspects the {title} was breached?",
                values=("24 hours", "48 hours", "2 business days", "3 business days", "5 business days"),
            ),
            FactKind(
                key="training",
                label="training deadline",
                statement="Staff in scope must complete {subject} training within {value} of joining.",
                questions=(
                    "When must new staff finish {subject} training?",
                    "What is the deadline for completing {subject} training?",
                    "How long do new joiners have to complete the training required by the {title}?",
                ),
                gold_question="By when after their start date must employees be trained on the {title}?",
                values=("14 days", "30 days", "60 days", "90 days"),
            ),
        ),
        filler=(
            "Compliance may request evidence at any time and without notice.",
            "Where local regulation is stricter than this document, the local rule applies.",
            "Breaches are reported to the board in the quarterly compliance report.",
            "Business lines remain the first line of defence; Compliance provides oversight and challenge.",
            "Exceptions are recorded in the exceptions register with an expiry date.",
        ),
    ),
    DepartmentVocabulary(
        name="Finance",
        code="FIN",
        kinds=("Policy", "Procedure", "Manual"),
        subjects=(
            "Expense Approval",
            "Travel and Subsistence",
            "Purchase Order",
            "Invoice Processing",
            "Vendor Payment",
            "Corporate Card",
            "Capital Expenditure",
            "Budget Variance",
            "Month-End Close",
            "Accruals",
            "Revenue Recognition",
            "Intercompany Reconciliation",
            "Fixed Asset",
            "Petty Cash",
            "Treasury Cash Management",
            "Foreign Exchange Hedging",
            "Customer Credit Limit",
            "Bad Debt Provisioning",
            "VAT Reporting",
            "Payroll Reconciliation",
            "Journal Entry Approval",
            "Delegation of Financial Authority",
            "Supplier Onboarding",
            "Duplicate Payment Prevention",
            "External Audit Support",
            "Rolling Forecast",
            "Cost Centre Management",
            "Lease Accounting",
            "Grants and Subsidies",
            "Insurance Claims",
            "Sales Commission",
            "Bank Account Management",
            "Customer Refund",
            "Write-Off Approval",
        ),
        facts=(
            _owner(
                (
                    "Chief Financial Officer",
                    "Financial Controller",
                    "Head of Treasury",
                    "Accounts Payable Manager",
                    "Head of Financial Planning",
                    "Group Tax Manager",
                )
            ),
            _review_cycle("the Finance leadership team", ("6 months", "12 months", "24 months")),
            FactKind(
                key="retention",
                label="retention period",
                statement="Supporting documents under the {title} are retained for {value}.",
                questions=(
                    "How long are supporting documents under the {title} retained?",
                    "What is the retention period for {subject} paperwork?",
                    "For how long must we keep {subject} receipts and records?",
                ),
                gold_question="Which storage duration does the {title} set for supporting documents?",
                values=("6 years", "7 years", "8 years", "10 years"),
            ),
            FactKind(
                key="system",
                label="processing system",
                statement="Transactions under the {title} are processed in {value}.",
                questions=(
                    "Which system processes {subject} transactions?",
                    "Where do I enter transactions under the {title}?",
                    "What tool is used for {subject} transactions?",
                ),
                gold_question="Name the application in which the {title} requires transactions to be processed.",
                values=("Ledgerline", "PayRun", "SpendWise", "ClosePoint", "CashDesk"),
            ),
            FactKind(
                key="approval_threshold",
                label="approval threshold",
                statement="Under the {title}, amounts above {value} require approval by the Chief Financial Officer.",
                questions=(
                    "What is the approval threshold in the {title}?",
                    "Above what amount does the CFO have to approve under the {title}?",
                    "When is CFO approval needed for {subject}?",
                ),
                gold_question="Which amount triggers Chief Financial Officer sign-off according to the {title}?",
                values=("EUR 5,000", "EUR 10,000", "EUR 20,000", "EUR 50,000", "EUR 75,000"),
            ),
            FactKind(
                key="submission_deadline",
                label="submission deadline",
                statement="Items covered by the {title} must be submitted within {value} of month-end.",
                questions=(
                    "What is the submission deadline under the {title}?",
                    "How soon after month-end must {subject} items be submitted?",
                    "By when do I submit {subject} paperwork after month-end?",
                ),
                gold_question="How many days after the close of the month does the {title} allow for submissions?",
                values=("2 business days", "3 business days", "5 business days", "10 calendar days"),
            ),
        ),
        filler=(
            "Amounts in other currencies are converted at the month-end rate published by Treasury.",
            "Splitting a transaction to stay below a threshold is a disciplinary matter.",
            "Cost centre owners review their reports every month and query anything unexpected.",
            "Internal audit tests a sample of transactions against this document each year.",
            "Late submissions are reported to the budget holder's manager.",
        ),
    ),
    DepartmentVocabulary(
        name="Engineering",
        code="ENG",
        kinds=("Runbook", "Guide", "Standard", "Manual"),
        subjects=(
            "Deploy Pipeline",
            "Incident Response",
            "Production Access",
            "Code Review",
            "Secrets Management",
            "Database Migration",
            "Feature Flag",
            "Release Train",
            "On-Call Rotation",
            "Backup and Restore",
            "Disaster Recovery",
            "Log Retention",
            "Vulnerability Patching",
            "Dependency Upgrade",
            "API Versioning",
            "Service Onboarding",
            "Load Testing",
            "Observability Dashboard",
            "Change Freeze",
            "Kubernetes Cluster Upgrade",
            "Single Sign-On Integration",
            "Data Warehouse Access",
            "Mobile App Release",
            "Postmortem",
            "Capacity Planning",
            "Certificate Rotation",
            "Build Cache",
            "Test Environment Booking",
            "Git Branching",
            "Container Image Hardening",
            "Queue Consumer Scaling",
            "Cloud Cost Tagging",
            "Sandbox Account",
            "Service Deprecation",
        ),
        facts=(
            _owner(
                (
                    "Platform Team",
                    "Site Reliability Team",
                    "Security Engineering team",
                    "Release Management team",
                    "Developer Experience Team",
                    "Data Platform Team",
                )
            ),
            _review_cycle("the Architecture Board", ("3 months", "6 months", "12 months")),
            FactKind(
                key="retention",
                label="log retention",
                statement="Logs produced under the {title} are retained for {value}.",
                questions=(
                    "How long are logs from the {title} kept?",
                    "What is the log retention for {subject}?",
                    "For how long do we store {subject} logs?",
                ),
                gold_question="Which storage duration does the {title} set for its logs?",
                values=("30 days", "90 days", "180 days", "365 days"),
            ),
            FactKind(
                key="system",
                label="tooling",
                statement="The {title} is carried out through {value}.",
                questions=(
                    "Which tool runs the {title}?",
                    "What system do we use for {subject}?",
                    "Where do we run {subject} tasks?",
                ),
                gold_question="Through which platform is the {title} executed?",
                values=("Harbor CI", "Beacon", "Quarry", "Atlas Console", "Lighthouse", "Tideway"),
            ),
            FactKind(
                key="approvals",
                label="required approvals",
                statement="Changes covered by the {title} need {value} before they reach production.",
                questions=(
                    "How many approvals does a change under the {title} need?",
                    "How many reviewers must approve {subject} changes?",
                    "What review count is required before {subject} changes ship?",
                ),
                gold_question="Before production, how many approving reviews does the {title} demand?",
                values=("1 approving review", "2 approving reviews", "3 approving reviews"),
            ),
            FactKind(
                key="response_time",
                label="acknowledgement time",
                statement="Alerts raised under the {title} must be acknowledged within {value}.",
                questions=(
                    "How fast must {subject} alerts be acknowledged?",
                    "What is the acknowledgement time for alerts under the {title}?",
                    "Within how many minutes do we acknowledge {subject} alerts?",
                ),
                gold_question="What acknowledgement window does the {title} set for alerts?",
                values=("5 minutes", "10 minutes", "15 minutes", "30 minutes"),
            ),
        ),
        filler=(
            "Every step is scripted; manual changes in production are recorded in the change log.",
            "If a step fails, stop and page the owning team rather than improvising a fix.",
            "Dashboards linked from the service catalogue show the current state of each environment.",
            "Automation runs with a dedicated service account that has no interactive login.",
            "Staging mirrors production closely enough that every procedure is rehearsed there first.",
        ),
    ),
    DepartmentVocabulary(
        name="HR",
        code="HR",
        kinds=("Policy", "Guideline", "Procedure"),
        subjects=(
            "Annual Leave",
            "Parental Leave",
            "Sick Leave",
            "Remote Work",
            "Performance Review",
            "Probation",
            "Recruitment",
            "Employee Referral",
            "Onboarding",
            "Offboarding",
            "Relocation",
            "Overtime",
            "Flexible Hours",
            "Training Budget",
            "Grievance",
            "Disciplinary",
            "Code of Conduct",
            "Bereavement Leave",
            "Sabbatical",
            "Salary Review",
            "Bonus",
            "Employee Data Privacy",
            "Background Check",
            "Internal Mobility",
            "Company Car",
            "Health and Safety",
            "Anti-Harassment",
            "Volunteering Leave",
        ),
        facts=(
            _owner(
                (
                    "Head of People",
                    "HR Business Partner",
                    "People Operations Lead",
                    "Head of Reward",
                    "Talent Acquisition Lead",
                    "Employee Relations Manager",
                )
            ),
            _review_cycle("the People leadership team", ("12 months", "24 months", "36 months")),
            FactKind(
                key="retention",
                label="retention period",
                statement="Personnel records created under the {title} are kept for {value} after employment ends.",
                questions=(
                    "How long are personnel records under the {title} kept?",
                    "What is the retention period for {subject} records?",
                    "For how long does HR store {subject} paperwork after someone leaves?",
                ),
                gold_question="Which storage duration does the {title} set for personnel records?",
                values=("2 years", "3 years", "6 years", "7 years"),
            ),
            FactKind(
                key="system",
                label="request system",
                statement="Requests under the {title} are submitted in {value}.",
                questions=(
                    "Which system do I use for {subject} requests?",
                    "Where do I submit a request under the {title}?",
                    "What tool handles {subject} requests?",
                ),
                gold_question="Name the application in which the {title} expects requests to be filed.",
                values=("PeopleHub", "TalentDesk", "LeaveLog", "LearnPath", "WorkNest"),
            ),
            FactKind(
                key="notice",
                label="notice period",
                statement="Requests under the {title} must be submitted at least {value} in advance.",
                questions=(
                    "How much notice do I need to give under the {title}?",
                    "How far in advance must {subject} requests be submitted?",
                    "What is the notice period for {subject} requests?",
                ),
                gold_question="How long before the start date does the {title} require a request?",
                values=("1 week", "2 weeks", "4 weeks", "6 weeks", "3 months"),
            ),
            FactKind(
                key="eligibility",
                label="eligibility period",
                statement="Employees become eligible under the {title} after {value} of service.",
                questions=(
                    "When do employees become eligible under the {title}?",
                    "How long do I have to work here before the {title} applies to me?",
                    "What is the qualifying service for {subject}?",
                ),
                gold_question="After how much service does an employee qualify under the {title}?",
                values=("3 months", "6 months", "12 months", "24 months"),
            ),
        ),
        filler=(
            "Managers discuss the rules in this document with new team members during their first week.",
            "Where a collective agreement grants more, the collective agreement applies.",
            "HR treats every request confidentially and shares details only with the people who decide it.",
            "Questions that this document does not answer go to the HR service desk.",
            "The company applies this document fairly and consistently to every employee.",
        ),
    ),
)

# The department whose documents retrieval over-cites in the demo traffic, and the one with the
# fewest curated examples (and so the worst answers).
OVER_CITED_DEPARTMENT = "Compliance"
WEAK_DEPARTMENT = "HR"

# Curated examples per department: deliberately skewed (Compliance is 5x HR).
EXAMPLE_TARGETS: dict[str, int] = {"Compliance": 350, "Legal": 250, "Finance": 200, "Engineering": 130, "HR": 70}
# Families that get a second version (their first version becomes outdated).
SUPERSEDED_FAMILIES: dict[str, int] = {"Compliance": 7, "Legal": 5, "Finance": 5, "Engineering": 4, "HR": 8}
# Other departments' notes on the weak department's subjects: the retrieval skew lives in the corpus.
# For CROSS_NOTE_SHARE of the weak department's families one other department keeps its own short copy
# under the same title, restating two of its facts with other values (copied from an old draft). TF-IDF ranks the short, dense note above the weak department's own longer
# document for many of its questions: "it prioritized information from one department over another,
# even when the latter was more relevant". Nothing in the title tells the two apart; which department
# owns a subject is what the reranker has to learn from the audit's retrieval fixes.
CROSS_NOTE_SHARE = 0.6
CROSS_NOTE_AUTHORS: tuple[tuple[str, str], ...] = (
    # department, what the department does with the subject
    ("Finance", "processes the payments and deductions that {subject} involves"),
    ("Legal", "checks that {subject} arrangements meet employment law"),
    ("Compliance", "monitors {subject} cases for conduct and conflict risks"),
)
# Held-out gold questions per department. 60 rather than 30: the gate's per-department checks (drop and
# gap, margin 0.15) and the weak department's correction effect are decided on these items, and at 30 a
# department's 95% interval was about +-0.17 wide, so a candidate whose true change there is 0 could not
# pass the drop check. 60 of HR's 168 fact slots still leaves 108 for examples and traffic.
GOLD_PER_DEPARTMENT = 60
# Planted data problems per department: near-duplicate questions with a contradicting answer, and
# examples that still state the fact of a superseded document version.
CONFLICTING_PER_DEPARTMENT = 3
OUTDATED_PER_DEPARTMENT = 3

# Prefixes that turn a question into a near-duplicate (planted conflicts).
NEAR_DUPLICATE_PREFIXES = ("Just to confirm, ", "Quick check: ", "Can you remind me: ")
# How staff phrase the same question in the chat (production traffic only).
CASUAL_PREFIXES = ("Hi, ", "Hello! ", "Sorry to bother you, ", "Question from my team: ", "Hey, ")

INTRO_TEMPLATES = (
    "{title}, version {version}, effective {date}. This {kind} sets out how the company handles "
    "{subject} and who is accountable for it. It applies to all employees, contractors and temporary "
    "staff whose work touches {subject}.",
    "Purpose. The {title} describes the rules the {department} function applies to {subject}. "
    "Version {version} takes effect on {date} and applies across all legal entities and offices.",
    "{title} (version {version}, in force from {date}). The {department} department maintains this {kind} "
    "so that {subject} is handled consistently and can be audited after the fact.",
)
