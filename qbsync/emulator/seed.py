"""Deterministic starting data: a realm that looks like a QuickBooks sandbox company, and
bulk customers generated in memory for volume tests."""

from __future__ import annotations

from dataclasses import dataclass

from qbsync.emulator import clock, customers
from qbsync.emulator.realm import JsonObject, NameOwner, Realm, name_key

SEED_AGE_SECONDS = 40 * 86400  # sandbox data predates CDC's 30-day look-back


@dataclass(frozen=True)
class SandboxCustomer:
    display_name: str
    given_name: str = ""
    family_name: str = ""
    company_name: str = ""
    street: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    phone: str = ""
    website: str = ""
    email: str = ""
    active: bool = True
    parent: str = ""  # display name of the parent customer


SANDBOX_CUSTOMERS: tuple[SandboxCustomer, ...] = (
    SandboxCustomer(
        "Amy's Bird Sanctuary",
        "Amy",
        "Lauterbach",
        "Amy's Bird Sanctuary",
        "4581 Finch St.",
        "Bayshore",
        "CA",
        "94326",
        "(650) 555-3311",
        "",
        "Birds@Intuit.com",
    ),
    SandboxCustomer(
        "Bill's Windsurf Shop",
        "Bill",
        "Lucchini",
        "Bill's Windsurf Shop",
        "12 Ocean Dr.",
        "Half Moon Bay",
        "CA",
        "94213",
        "(415) 444-6538",
    ),
    SandboxCustomer(
        "Cool Cars",
        "Grace",
        "Pariente",
        "Cool Cars",
        "65 Ocean Dr.",
        "Half Moon Bay",
        "CA",
        "94213",
        "(415) 555-9933",
        "",
        "Cool_Cars@intuit.com",
    ),
    SandboxCustomer(
        "Diego Rodriguez",
        "Diego",
        "Rodriguez",
        "",
        "321 Channing",
        "Palo Alto",
        "CA",
        "94303",
        "(650) 555-4477",
        "",
        "Diego@Rodriguez.com",
    ),
    SandboxCustomer(
        "Dukes Basketball Camp",
        "Peter",
        "Dukes",
        "Dukes Basketball Camp",
        "25 Court St.",
        "Tucson",
        "AZ",
        "85719",
        "(520) 420-5638",
        "",
        "Dukes_bball@intuit.com",
    ),
    SandboxCustomer("Dylan Sollfrank", "Dylan", "Sollfrank"),
    SandboxCustomer(
        "Freeman Sporting Goods",
        "Sasha",
        "Tillou",
        "Freeman Sporting Goods",
        "370 Easy St.",
        "Middlefield",
        "CA",
        "94482",
        "(650) 555-0987",
        "http://www.freemansporting.net",
        "Sporting_goods@intuit.com",
    ),
    SandboxCustomer(
        "0969 Ocean View Road",
        "Sasha",
        "Tillou",
        "Freeman Sporting Goods",
        "370 Easy St.",
        "Middlefield",
        "CA",
        "94482",
        "(415) 555-9933",
        parent="Freeman Sporting Goods",
    ),
    SandboxCustomer(
        "Geeta Kalapatapu",
        "Geeta",
        "Kalapatapu",
        "",
        "1987 Main St.",
        "Middlefield",
        "CA",
        "94303",
        "(650) 555-0022",
        "",
        "Geeta@Kalapatapu.com",
    ),
    SandboxCustomer(
        "Gevelber Photography",
        "Lisa",
        "Gevelber",
        "Gevelber Photography",
        "1103 Cherry Ln.",
        "San Pablo",
        "CA",
        "94806",
        "(415) 222-4345",
        "http://gevelberphotography.com",
        "Photography@intuit.com",
    ),
    SandboxCustomer(
        "Jeff's Jalopies",
        "Jeff",
        "Chin",
        "Jeff's Jalopies",
        "12 Willow Rd.",
        "Menlo Park",
        "CA",
        "94305",
        "(650) 555-8989",
        "",
        "Jalopies@intuit.com",
    ),
    SandboxCustomer(
        "John Melton",
        "John",
        "Melton",
        "",
        "85 Pine St.",
        "Menlo Park",
        "CA",
        "94304",
        "(650) 555-5879",
        "",
        "John@Melton.com",
    ),
    SandboxCustomer(
        "Kate Whelan",
        "Kate",
        "Whelan",
        "",
        "45 First St.",
        "Menlo Park",
        "CA",
        "94304",
        "(650) 554-1479",
        "",
        "Kate@Whelan.com",
    ),
    SandboxCustomer(
        "Kookies by Kathy",
        "Kathy",
        "Kuplis",
        "Kookies by Kathy",
        "789 Sugar Lane",
        "Middlefield",
        "CA",
        "94303",
        "(650) 555-7896",
        "http://kookiesbykathy.com",
        "qbwebsamplecompany@yahoo.com",
    ),
    SandboxCustomer(
        "Mark Cho",
        "Mark",
        "Cho",
        "",
        "36 Willow Rd",
        "Menlo Park",
        "CA",
        "94304",
        "(650) 554-1479",
        "",
        "Mark@Cho.com",
    ),
    SandboxCustomer(
        "Paulsen Medical Supplies",
        "Kristy",
        "Paulsen",
        "Paulsen Medical Supplies",
        "900 Main St.",
        "Middlefield",
        "CA",
        "94303",
        "(650) 557-8855",
        "http://paulsenmedicalsupplies.com",
        "Medical@intuit.com",
    ),
    SandboxCustomer(
        "Pye's Cakes",
        "Karen",
        "Pye",
        "Pye's Cakes",
        "350 Mountain View Dr.",
        "South Orange",
        "NJ",
        "07079",
        "(973) 555-4652",
        "http://www.pyescakes.com",
        "pyescakes@intuit.com",
    ),
    SandboxCustomer(
        "Rago Travel Agency",
        "Nicola",
        "Rago",
        "Rago Travel Agency",
        "753 Cedar Dr.",
        "Bayshore",
        "CA",
        "94326",
        "(650) 555-1596",
        "http://www.ragotravel.net",
        "Rago_Travel@intuit.com",
    ),
    SandboxCustomer(
        "Red Rock Diner",
        "Stephanie",
        "Martini",
        "Red Rock Diner",
        "500 Red Rock Rd.",
        "Bayshore",
        "CA",
        "94326",
        "(650) 555-4973",
        "http://www.redrockdiner.com",
        "qbwebsamplecompany@yahoo.com",
    ),
    SandboxCustomer(
        "Rondonuwu Fruit and Vegi",
        "Jeff",
        "Rondonuwu",
        "Rondonuwu Fruit and Vegi",
        "847 California Ave.",
        "San Jose",
        "CA",
        "95021",
        "(650) 555-2645",
        "",
        "Tony@Rondonuwu.com",
    ),
    SandboxCustomer(
        "Shara Barnett",
        "Shara",
        "Barnett",
        "Barnett Design",
        "19 Main St.",
        "Middlefield",
        "CA",
        "94303",
        "(650) 555-4563",
        "",
        "Design@intuit.com",
    ),
    SandboxCustomer(
        "Sonnenschein Family Store",
        "Russ",
        "Sonnenschein",
        "Sonnenschein Family Store",
        "5647 Cypress Hill Ave.",
        "Middlefield",
        "CA",
        "94303",
        "(650) 557-8463",
        "",
        "Familiystore@intuit.com",
    ),
    SandboxCustomer(
        "Sushi by Katsuyuki",
        "Kaito",
        "Katsuyuki",
        "Sushi by Katsuyuki",
        "898 Elm St.",
        "Maplewood",
        "NJ",
        "07040",
        "(505) 570-0147",
        "http://sushibykatsuyuki.com",
        "Sushi@intuit.com",
    ),
    SandboxCustomer(
        "Travis Waldron",
        "Travis",
        "Waldron",
        "",
        "78 First St.",
        "Monlo Park",
        "CA",
        "94304",
        "(650) 555-9834",
        "",
        "Travis@Waldron.com",
    ),
    SandboxCustomer(
        "Video Games by Dan",
        "Dan",
        "Miller",
        "Video Games by Dan",
        "1350 Main St.",
        "Middlefield",
        "CA",
        "94303",
        "(650) 555-8500",
        "",
        "Videogames@intuit.com",
    ),
    SandboxCustomer(
        "Wedding Planning by Whitney",
        "Whitney",
        "Brandon",
        "Wedding Planning by Whitney",
        "135 Broadway",
        "Palo Alto",
        "CA",
        "94303",
        "(650) 557-2273",
        "",
        "Dream_Wedding@intuit.com",
    ),
    SandboxCustomer(
        "Weiskopf Consulting",
        "Nicole",
        "Weiskopf",
        "Weiskopf Consulting",
        "45612 Main St.",
        "Bayshore",
        "CA",
        "94326",
        "(650) 555-6325",
        "http://www.weiskopfconsulting.com",
        "Consulting@intuit.com",
    ),
    SandboxCustomer(
        "Hallie's Hardware",
        "Hallie",
        "Moss",
        "Hallie's Hardware",
        "22 Iron Way",
        "San Carlos",
        "CA",
        "94070",
        "(650) 555-1020",
        active=False,
    ),
    SandboxCustomer(
        "Old Oak Accounting",
        "Oliver",
        "Oak",
        "Old Oak Accounting",
        website="http://oldoak.example",
        active=False,
    ),
    SandboxCustomer(
        "Nimbus Landscaping",
        "Nina",
        "Bus",
        "Nimbus Landscaping",
        phone="(650) 555-0144",
        active=False,
    ),
)

# (name, description, unit price, type)
SANDBOX_ITEMS: tuple[tuple[str, str, float, str], ...] = (
    ("Services", "", 0.0, "Service"),
    ("Design", "Custom Design", 75.0, "Service"),
    ("Hours", "", 0.0, "Service"),
    ("Installation", "Installation of landscape design", 50.0, "Service"),
    ("Maintenance & Repair", "Maintenance & Repair", 0.0, "Service"),
    ("Pest Control", "Pest control service", 35.0, "Service"),
)

# A new QuickBooks company's chart of accounts (the part items and invoices refer to):
# (name, AccountType, AccountSubType, Classification). Every realm has it, empty or not.
CHART_OF_ACCOUNTS = (
    ("Services", "Income", "ServiceFeeIncome", "Revenue"),
    ("Sales of Product Income", "Income", "SalesOfProductIncome", "Revenue"),
    ("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable", "Asset"),
    ("Undeposited Funds", "Other Current Asset", "UndepositedFunds", "Asset"),
    ("Cost of Goods Sold", "Cost of Goods Sold", "SuppliesMaterialsCogs", "Expense"),
)

SANDBOX_VENDORS = (
    "Books by Bessie",
    "Brosnahan Insurance Agency",
    "Norton Lumber and Building Materials",
)
SANDBOX_EMPLOYEES = ("Emily Platt", "John Johnson")


def sandbox_customer_fields(customer: SandboxCustomer) -> JsonObject:
    fields: JsonObject = {"DisplayName": customer.display_name, "Active": customer.active}
    for key, value in (
        ("GivenName", customer.given_name),
        ("FamilyName", customer.family_name),
        ("CompanyName", customer.company_name),
    ):
        if value:
            fields[key] = value
    if customer.street:
        fields["BillAddr"] = {
            "Line1": customer.street,
            "City": customer.city,
            "CountrySubDivisionCode": customer.state,
            "PostalCode": customer.postal_code,
        }
    if customer.phone:
        fields["PrimaryPhone"] = {"FreeFormNumber": customer.phone}
    if customer.website:
        fields["WebAddr"] = {"URI": customer.website}
    if customer.email:
        fields["PrimaryEmailAddr"] = {"Address": customer.email}
    return fields


def seed_chart_of_accounts(realm: Realm, now: float) -> None:
    """The accounts every QuickBooks company starts with (Services, the income account
    of service items, is Id 1)."""
    at = now - SEED_AGE_SECONDS
    for name, account_type, sub_type, classification in CHART_OF_ACCOUNTS:
        account_id = realm.accounts.allocate_id()
        realm.accounts.rows[account_id] = {
            "Name": name,
            "SubAccount": False,
            "FullyQualifiedName": name,
            "Active": True,
            "Classification": classification,
            "AccountType": account_type,
            "AccountSubType": sub_type,
            "CurrentBalance": 0,
            "CurrentBalanceWithSubAccounts": 0,
            "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            "domain": "QBO",
            "sparse": False,
            "Id": account_id,
            "SyncToken": "0",
            "MetaData": {
                "CreateTime": clock.metadata_time(at),
                "LastUpdatedTime": clock.metadata_time(at),
            },
        }
        realm.accounts.record_change(account_id, at)


def seed_sandbox(realm: Realm, now: float) -> None:
    """Fill an empty realm like a fresh QuickBooks sandbox company. Every realm seeded this
    way holds the same ids, names and fields; times are SEED_AGE_SECONDS before `now`."""
    at = now - SEED_AGE_SECONDS
    for name in SANDBOX_VENDORS:
        realm.names[name_key(name)] = NameOwner("Vendor", name)
    for name in SANDBOX_EMPLOYEES:
        realm.names[name_key(name)] = NameOwner("Employee", name)
    for index, (name, description, price, kind) in enumerate(SANDBOX_ITEMS):
        item_id = realm.items.allocate_id()
        realm.items.rows[item_id] = _item_row(item_id, name, description, price, kind, at + index)
        realm.items.record_change(item_id, at + index)
    by_name: dict[str, str] = {}
    for index, customer in enumerate(SANDBOX_CUSTOMERS):
        fields = sandbox_customer_fields(customer)
        if customer.parent:
            fields["ParentRef"] = {"value": by_name[customer.parent]}
            fields["BillWithParent"] = True
        row = customers.insert_trusted(realm, fields, at + 60 * (index + 1))
        by_name[customer.display_name] = row["Id"]


def _item_row(
    item_id: str, name: str, description: str, price: float, kind: str, at: float
) -> JsonObject:
    row: JsonObject = {
        "Name": name,
        "Active": True,
        "FullyQualifiedName": name,
        "Taxable": False,
        "UnitPrice": price,
        "Type": kind,
        "IncomeAccountRef": {"value": "1", "name": "Services"},
        "PurchaseCost": 0,
        "TrackQtyOnHand": False,
        "domain": "QBO",
        "sparse": False,
        "Id": item_id,
        "SyncToken": "0",
        "MetaData": {
            "CreateTime": clock.metadata_time(at),
            "LastUpdatedTime": clock.metadata_time(at),
        },
    }
    if description:
        row["Description"] = description
    return row


def bulk_customers(
    realm: Realm, count: int, now: float, *, prefix: str = "Bulk Customer", inactive_every: int = 0
) -> tuple[str | None, str | None]:
    """Add `count` generated customers (no webhooks); returns the first and last new Id.

    Customer n (its Id) is named "{prefix} {n:07d}"; even ids get an address, ids divisible
    by 3 a phone, by 5 a website; with inactive_every k, every k-th one is inactive.
    """
    first: str | None = None
    last: str | None = None
    for sequence in range(1, count + 1):
        number = realm.customers.next_id
        fields: JsonObject = {
            "DisplayName": f"{prefix} {number:07d}",
            "CompanyName": f"{prefix} {number:07d}",
        }
        if number % 2 == 0:
            fields["BillAddr"] = {
                "Line1": f"{number} Market St.",
                "City": "Springfield",
                "CountrySubDivisionCode": "IL",
                "PostalCode": f"{62700 + number % 100:05d}",
                "Country": "US",
            }
        if number % 3 == 0:
            fields["PrimaryPhone"] = {"FreeFormNumber": f"(217) 555-{number % 10000:04d}"}
        if number % 5 == 0:
            fields["WebAddr"] = {"URI": f"https://customer{number}.example"}
        if inactive_every and sequence % inactive_every == 0:
            fields["Active"] = False
        if realm.name_owner(fields["DisplayName"]) is not None:
            fields["DisplayName"] = f"{fields['DisplayName']} ({realm.realm_id})"
        row = customers.insert_trusted(realm, fields, now)
        first = first or row["Id"]
        last = row["Id"]
    return first, last
